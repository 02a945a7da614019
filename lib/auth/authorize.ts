import { forbidden, unauthenticated } from '../errors.ts';
import { Role, type ServiceCaller, type Viewer } from './tokens.ts';

export function requireViewer(viewer: Viewer | null): Viewer {
  if (!viewer) throw unauthenticated();
  return viewer;
}

export function requireAdmin(viewer: Viewer | null): Viewer {
  const signedIn = requireViewer(viewer);
  if (signedIn.role !== Role.ADMIN) throw forbidden('Only an ADMIN can do this.');
  return signedIn;
}

/** Owner or ADMIN (API.md): the rule for a user's own orders, payments and profile. */
export function requireSelfOrAdmin(viewer: Viewer | null, ownerId: string, what = 'this'): Viewer {
  const signedIn = requireViewer(viewer);
  if (signedIn.role !== Role.ADMIN && signedIn.id !== ownerId) {
    throw forbidden(`You can only see ${what} of your own account.`);
  }
  return signedIn;
}

/**
 * Internal (`@inaccessible`) operations: only the named sibling services may call them, never
 * the gateway on behalf of a user, whatever the user's role.
 */
export function requireServiceCaller(caller: ServiceCaller, allowed: readonly string[], what: string): void {
  if (!allowed.includes(caller.service)) {
    throw forbidden(`Only the ${allowed.join(' or ')} service may ${what}.`);
  }
}
