// Optional settings passed on without their unset fields, so a callee's defaults apply: one call
// instead of a `...(x !== undefined ? { x } : {})` per field.

/** The object without its undefined fields. */
export function definedOnly<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}
