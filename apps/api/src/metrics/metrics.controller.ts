/**
 * `GET /metrics`: the Prometheus text exposition of `ApiMetrics`. No API key: Prometheus scrapes it from inside the
 * cluster; it names team ids and counts, no job content. The NetworkPolicies (k8s/) restrict ports, not paths, and
 * clients share this port: a public ingress should not route /metrics. Not in the OpenAPI document (not client API).
 */
import { Controller, Get, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';
import { ApiMetrics } from './metrics.service';

@ApiExcludeController()
@Controller()
export class MetricsController {
  constructor(private readonly metrics: ApiMetrics) {}

  @Get('metrics')
  async scrape(@Res() res: Response): Promise<void> {
    const text = await this.metrics.registry.metrics();
    // as prom-client spells it (Express' send would reorder the parameters)
    res.status(200).setHeader('content-type', this.metrics.registry.contentType).end(text);
  }
}
