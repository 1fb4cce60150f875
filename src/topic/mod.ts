/** Topic names, filters, shared subscriptions and the subscription tree. Pure. */
export * from "./validate.ts";
export * from "./trie.ts";
