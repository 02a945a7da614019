const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Ids from clients are not trusted to be UUIDs: a malformed one matches nothing (the lookup
 * returns null) instead of reaching PostgreSQL as an invalid-cast error.
 */
export const isUuid = (id: string): boolean => UUID.test(id);
