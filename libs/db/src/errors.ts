import type { JobStatus } from '@dimoo/contracts';

/** Base class of the errors this library throws on purpose; match with `instanceof`, never on messages. */
export abstract class DbError extends Error {
  protected constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

export type EntityName = 'job' | 'team' | 'apiKey' | 'batch';

/** The row does not exist, or belongs to another team (the two are indistinguishable on purpose). */
export class NotFound extends DbError {
  public constructor(
    public readonly entity: EntityName,
    public readonly id: string,
  ) {
    super(`${entity} ${id} not found`);
  }
}

/** A unique value (team name, key prefix) is already taken. */
export class AlreadyExists extends DbError {
  public constructor(
    public readonly entity: EntityName,
    public readonly field: string,
    options?: ErrorOptions,
  ) {
    super(`${entity} with this ${field} already exists`, options);
  }
}

export type TransitionName = 'start' | 'progress' | 'succeed' | 'fail' | 'requestCancel' | 'canceled' | 'markEnqueued';

/** The job exists but its status does not allow the transition (e.g. cancelling a finished job). */
export class TransitionRejected extends DbError {
  public constructor(
    public readonly jobId: string,
    public readonly transition: TransitionName,
    public readonly status: JobStatus,
  ) {
    super(`job ${jobId}: ${transition} rejected in status ${status}`);
  }
}
