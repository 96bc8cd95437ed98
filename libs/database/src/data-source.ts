// The DataSource the TypeORM CLI uses (`npm run migration:run`, `migration:revert`, `migration:show`).
import { DataSource } from 'typeorm';
import { loadKilnConfig } from '@kiln/config';
import { kilnDataSourceOptions } from './data-source-options.js';

export default new DataSource(kilnDataSourceOptions(loadKilnConfig().DATABASE_URL));
