// The API's response shapes as the dashboard reads them: the SDK's (libs/sdk/src/types.ts), which
// test/sdk.e2e-spec.ts keeps in step with the API's OpenAPI document. Types only: nothing of the SDK's
// Node code reaches the browser bundle.
export type {
  Artifact,
  ArtifactDownload,
  Build,
  BuildLog,
  Channel,
  ChannelMove,
  Compilation,
  EventsToken,
  FleetClass,
  FleetEvidence,
  FleetServing,
  FleetView,
  Model,
  ModelVersion,
  PresignedPart,
  Resolution,
  Rollout,
  RolloutEvent,
  Target,
  Upload,
  UploadState,
  UploadStatus,
} from '@kiln/sdk/types';
