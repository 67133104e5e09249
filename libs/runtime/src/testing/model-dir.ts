import { resolve } from 'node:path';

/** The committed tiny model, or DIMOO_TEST_MODEL_DIR (e.g. the real-model twin). */
export const TEST_MODEL_DIR = process.env['DIMOO_TEST_MODEL_DIR'] ?? resolve(__dirname, '../../../../models/tiny');
