import type { DataSourceOptions } from 'typeorm';
import { MIGRATIONS } from '@kiln/migrations';
import { ENTITIES } from './entities/index.js';

/**
 * The one description of Kiln's database, shared by the API, the worker, the migration CLI
 * (data-source.ts) and the tests. Schema changes only happen through migrations/.
 */
export function kilnDataSourceOptions(url: string, overrides: Partial<DataSourceOptions> = {}): DataSourceOptions {
  return {
    type: 'postgres',
    url,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    synchronize: false,
    // gen_random_uuid() is built into PostgreSQL 13+; uuid-ossp would need an extension.
    uuidExtension: 'pgcrypto',
    migrationsTransactionMode: 'each',
    logging: ['error', 'warn', 'migration'],
    extra: { max: 10 },
    ...overrides,
  } as DataSourceOptions;
}
