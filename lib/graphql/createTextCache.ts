import { LRUCache } from 'lru-cache';

/** Distinct operation texts a cache keeps, and how many characters they may add up to. */
const TEXTS_KEPT = 1_000;
const TEXT_CHARS_KEPT = 4 * 1024 * 1024;

/**
 * A cache keyed by operation text (what a client sends, over and over): bounded by count and by
 * the texts' total length, so a client sending ever new or huge texts cannot grow it without
 * bound. The gateway keeps token counts, parsed subscription documents and known queries in one.
 */
export function createTextCache<V extends NonNullable<unknown>>(): LRUCache<string, V> {
  return new LRUCache<string, V>({
    max: TEXTS_KEPT,
    maxSize: TEXT_CHARS_KEPT,
    sizeCalculation: (_value, text) => Math.max(1, text.length),
  });
}
