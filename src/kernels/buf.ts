// The one buffer type every kernel takes: Float32Array for real work, Float64Array for the
// reference loops and finite-difference gradient checks. Kernels sit below the model, so the
// model's parameter views take the type from here.

export type Buf = Float32Array | Float64Array;
