/** Reading V8 heap snapshot files (idle_heap.ts, offline_heap.ts). */

/** Self bytes and count per "type:name" of a heap snapshot file. */
export async function aggregate(path: string): Promise<Map<string, { count: number; bytes: number }>> {
  const parsed = JSON.parse(await Deno.readTextFile(path));
  const meta = parsed.snapshot.meta;
  const fields: string[] = meta.node_fields;
  const types: string[] = meta.node_types[0];
  const stride = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const nodes: number[] = parsed.nodes;
  const strings: string[] = parsed.strings;
  const kinds = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < nodes.length; i += stride) {
    const type = types[nodes[i + typeAt]];
    // Strings, code and numbers by type only: their "name" is their content.
    const name = ["object", "closure", "native", "hidden", "object shape", "array"].includes(type)
      ? strings[nodes[i + nameAt]].slice(0, 60)
      : "";
    const key = `${type}:${name}`;
    const kind = kinds.get(key) ?? { count: 0, bytes: 0 };
    kind.count++;
    kind.bytes += nodes[i + sizeAt];
    kinds.set(key, kind);
  }
  return kinds;
}
