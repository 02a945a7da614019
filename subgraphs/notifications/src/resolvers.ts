import { requireSelfOrAdmin } from '../../../lib/auth/authorize.ts';
import type { ServiceCaller, Viewer } from '../../../lib/auth/tokens.ts';
import { pageSize } from '../../../lib/graphql/connection.ts';
import { dateTimeScalar } from '../../../lib/graphql/dateTimeScalar.ts';
import type { NotificationStore } from './store.ts';

export interface NotificationsContext {
  viewer: Viewer | null;
}

export const createNotificationsContext = (caller: ServiceCaller): NotificationsContext => ({
  viewer: caller.viewer,
});

export function createNotificationsResolvers({ store }: { store: NotificationStore }) {
  return {
    DateTime: dateTimeScalar,
    User: {
      __resolveReference: (ref: { id: string }) => ({ id: ref.id }),
      notifications: (user: { id: string }, args: { first?: number | null }, ctx: NotificationsContext) => {
        requireSelfOrAdmin(ctx.viewer, user.id, 'notifications');
        return store.latestFor(user.id, pageSize(args.first));
      },
    },
  };
}
