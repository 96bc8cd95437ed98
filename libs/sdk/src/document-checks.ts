// Compile-time checks (tsc -p .) that the generated document types agree with the contracts the rest of Kiln
// uses: an enum value or a field added on one side only fails the typecheck. Nothing here runs. (Not in types.ts:
// the dashboard's tsconfig refuses unused locals, and these are not part of the SDK's public types.)
import type { BuildStatus, CompilationStatus, ErrorCode } from '@kiln/contracts';
import type { RankedArtifact, SpeedupBasis } from '@kiln/matching';
import type { components } from './generated/openapi.js';

type Schemas = components['schemas'];
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;

export type _DocumentAgreesWithContracts = [
  Assert<Same<Schemas['BuildResponseDto']['status'], BuildStatus>>,
  Assert<Same<Schemas['CompilationResponseDto']['status'], CompilationStatus>>,
  Assert<Same<Schemas['ErrorBody']['error']['code'], ErrorCode>>,
  Assert<Same<Schemas['RankedArtifactDto'], RankedArtifact>>,
  Assert<Same<NonNullable<Schemas['FleetServingDto']['basis']>, SpeedupBasis>>,
  Assert<Same<Schemas['ResolvedArtifactDto']['basis'], SpeedupBasis>>,
];
