// Every migration, in order. Never edit one that has landed: add a new one.
import { InitialSchema1764151200000 } from './1764151200000-InitialSchema.js';
import { SignaturesAndChannels1764158400000 } from './1764158400000-SignaturesAndChannels.js';
import { Uploads1764172800000 } from './1764172800000-Uploads.js';
import { KeyScopesAndQuotas1764860000000 } from './1764860000000-KeyScopesAndQuotas.js';
import { PortableModelObject1764907200000 } from './1764907200000-PortableModelObject.js';
import { FleetEvidence1764950400000 } from './1764950400000-FleetEvidence.js';
import { BlobLedger1765000000000 } from './1765000000000-BlobLedger.js';
import { KeyRoles1765000100000 } from './1765000100000-KeyRoles.js';
import { AuditLog1765000200000 } from './1765000200000-AuditLog.js';
import { RetentionPolicies1765000300000 } from './1765000300000-RetentionPolicies.js';
import { Webhooks1765000400000 } from './1765000400000-Webhooks.js';
import { BuildWorker1765000750000 } from './1765000750000-BuildWorker.js';
import { CompilationReproduce1765000800000 } from './1765000800000-CompilationReproduce.js';

export const MIGRATIONS = [
  InitialSchema1764151200000,
  SignaturesAndChannels1764158400000,
  Uploads1764172800000,
  KeyScopesAndQuotas1764860000000,
  PortableModelObject1764907200000,
  FleetEvidence1764950400000,
  BlobLedger1765000000000,
  KeyRoles1765000100000,
  AuditLog1765000200000,
  RetentionPolicies1765000300000,
  Webhooks1765000400000,
  BuildWorker1765000750000,
  CompilationReproduce1765000800000,
];
