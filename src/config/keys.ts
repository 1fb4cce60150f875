import { z } from "zod";

/** How the raw text of a `.properties` value is turned into what the key's zod schema validates. */
export type ValueKind = "integer" | "boolean" | "string";

/**
 * One configuration key. The zod schema holds its type, range or enum and default; `expected`
 * says the same in words for error messages and the generated file; `description` documents it.
 */
export interface KeySpec<S extends z.ZodType = z.ZodType> {
  readonly schema: S;
  readonly kind: ValueKind;
  /** Completes the sentence "expected ...", e.g. "an integer from 1 to 65535". */
  readonly expected: string;
  readonly description: string;
}

/** The zod object shape made of a record of key specs. */
export type ShapeOf<T extends Record<string, KeySpec>> = { [K in keyof T]: T[K]["schema"] };

/** Declares a key whose schema or wording the helpers below do not cover. */
export function key<S extends z.ZodType>(spec: KeySpec<S>): KeySpec<S> {
  return spec;
}

/** A whole number in `[min, max]`; without `max`, any safe integer from `min` up. */
export function integer(range: { min: number; max?: number }, fallback: number, description: string) {
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  const expected = range.max === undefined
    ? `an integer >= ${range.min}`
    : `an integer from ${range.min} to ${range.max}`;
  return key({
    schema: z.int().min(range.min).max(max).default(fallback),
    kind: "integer",
    expected,
    description,
  });
}

/** `true` or `false`, any case. */
export function flag(fallback: boolean, description: string) {
  return key({
    schema: z.boolean().default(fallback),
    kind: "boolean",
    expected: "true or false",
    description,
  });
}

/** `true` or `false`, or unset when the default depends on other settings. */
export function optionalFlag(description: string) {
  return key({ schema: z.boolean().optional(), kind: "boolean", expected: "true or false", description });
}

/** One of a fixed set of words. */
export function choice<const T extends readonly [string, ...string[]]>(
  values: T,
  fallback: T[number],
  description: string,
) {
  return key({
    schema: z.enum(values).default(fallback),
    kind: "string",
    expected: `one of ${values.join(", ")}`,
    description,
  });
}

/** Non-empty text. */
export function text(fallback: string, description: string) {
  return key({
    schema: z.string().min(1).default(fallback),
    kind: "string",
    expected: "a non-empty string",
    description,
  });
}

/** Text that may be left unset; an empty value also means unset. */
export function optionalText(description: string) {
  return key({
    schema: z.string().min(1).optional(),
    kind: "string",
    expected: "a non-empty string",
    description,
  });
}

/** Builds the zod object that validates a record of keys and fills in their defaults. */
export function objectOf<T extends Record<string, KeySpec>>(specs: T) {
  const shape = Object.fromEntries(Object.entries(specs).map(([name, spec]) => [name, spec.schema]));
  return z.object(shape as ShapeOf<T>);
}
