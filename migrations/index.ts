// Every migration, in order. Never edit one that has landed: add a new one.
import { InitialSchema1764151200000 } from './1764151200000-InitialSchema.js';
import { SignaturesAndChannels1764158400000 } from './1764158400000-SignaturesAndChannels.js';
import { Uploads1764172800000 } from './1764172800000-Uploads.js';
import { FleetEvidence1764264000123 } from './1764264000123-FleetEvidence.js';

export const MIGRATIONS = [
  InitialSchema1764151200000,
  SignaturesAndChannels1764158400000,
  Uploads1764172800000,
  FleetEvidence1764264000123,
];
