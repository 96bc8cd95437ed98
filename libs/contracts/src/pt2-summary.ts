/** What the TypeScript .pt2 reader extracts from an upload, before anything touches torch. */
export type DType =
  | 'uint8'
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'float16'
  | 'float32'
  | 'float64'
  | 'complex32'
  | 'complex64'
  | 'complex128'
  | 'bool'
  | 'bfloat16'
  | 'float8_e4m3fn'
  | 'float8_e5m2'
  | 'float8_e4m3fnuz'
  | 'float8_e5m2fnuz'
  | 'uint16'
  | 'uint32'
  | 'uint64'
  | 'unknown';

/** One dimension of a tensor: a fixed size, or a symbolic size with the range export recorded. */
export type DimSpec =
  | { kind: 'static'; size: number }
  | {
      kind: 'dynamic';
      /** Rendered expression, e.g. `s77` or `2*s77 + 1`. */
      expr: string;
      /** Symbols the expression uses. */
      symbols: string[];
      /** Range of the dimension when it is a bare symbol (null = unbounded), from range_constraints. */
      min: number | null;
      max: number | null;
      /** The size seen at export time, if recorded. */
      hint: number | null;
    };

export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: DimSpec[];
}

export interface Pt2Summary {
  /** The single top folder of the archive (stripped when reading). */
  archiveRoot: string;
  modelName: string;
  schemaVersion: { major: number; minor: number };
  torchVersion: string;
  opsetVersion: Record<string, number>;
  /** `aten.linear.default` → number of nodes calling it. */
  opHistogram: Record<string, number>;
  nodeCount: number;
  userInputs: TensorSpec[];
  userOutputs: TensorSpec[];
  /** Symbol → range, as recorded by export (null = unbounded). */
  rangeConstraints: Record<string, { min: number | null; max: number | null }>;
  /**
   * How input sizes must relate, as torch checks them before running the portable graph (Python
   * expressions over the inputs, e.g. `(2*L['x'].size()[0]) == L['y'].size()[0]` for a derived dim).
   * Every entry passed Kiln's guard grammar (docs/errors.md, PT2_GUARDS_CODE).
   */
  guards: string[];
  parameters: { tensors: number; elements: number; bytes: number };
  buffers: { tensors: number; elements: number; bytes: number };
  constants: { tensors: number; elements: number; bytes: number };
  archive: { entries: number; bytes: number };
  /**
   * sha256 of the model's canonical content (program JSON + weight/constant configs and bytes), never of
   * the zip: zips carry a random serialization id. Identical content ⇒ identical hash ⇒ cache hit.
   */
  contentHash: string;
}
