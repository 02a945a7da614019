import DataLoader from 'dataloader';
import { z } from 'zod';
import { requireSelfOrAdmin } from '../../../lib/auth/authorize.ts';
import { Role, type ServiceCaller, type UserTokens, type Viewer } from '../../../lib/auth/tokens.ts';
import { badUserInput, unauthenticated } from '../../../lib/errors.ts';
import { dateTimeScalar } from '../../../lib/graphql/dateTimeScalar.ts';
import { parseInput } from '../../../lib/graphql/parseInput.ts';
import { createDecoyCheck, hashPassword, verifyPassword } from './passwords.ts';
import { DuplicateEmailError, type UserRecord, type UserStore } from './store.ts';

export interface UsersContext {
  viewer: Viewer | null;
  users: DataLoader<string, UserRecord | null>;
}

export function createUsersContext(store: UserStore, caller: ServiceCaller): UsersContext {
  return { viewer: caller.viewer, users: new DataLoader((ids) => store.findByIds(ids)) };
}

const email = z.string().trim().toLowerCase().pipe(z.email('must be a valid email address').max(254));
const signUpInput = z.object({
  email,
  name: z.string().trim().min(1, 'must not be empty').max(100, 'must be at most 100 characters'),
  password: z.string().min(8, 'must be at least 8 characters').max(256, 'must be at most 256 characters'),
});

export function createUsersResolvers({
  store,
  userTokens,
  onEventsAppended,
}: {
  store: UserStore;
  userTokens: UserTokens;
  /** Wakes the outbox relay after a transaction that wrote events. */
  onEventsAppended: () => void;
}) {
  const decoyCheck = createDecoyCheck();
  const authPayload = async (user: UserRecord) => ({
    token: await userTokens.issue({ id: user.id, role: user.role }),
    user,
  });

  return {
    DateTime: dateTimeScalar,
    Query: {
      me: (_: unknown, __: unknown, ctx: UsersContext) => (ctx.viewer ? ctx.users.load(ctx.viewer.id) : null),
      user: (_: unknown, { id }: { id: string }, ctx: UsersContext) => {
        requireSelfOrAdmin(ctx.viewer, id, 'the profile');
        return ctx.users.load(id);
      },
    },
    Mutation: {
      signUp: async (_: unknown, { input }: { input: unknown }) => {
        const valid = parseInput(signUpInput, input);
        try {
          const user = await store.signUp({
            email: valid.email,
            name: valid.name,
            role: Role.CUSTOMER,
            passwordHash: await hashPassword(valid.password),
          });
          onEventsAppended();
          return authPayload(user);
        } catch (error) {
          if (error instanceof DuplicateEmailError) {
            throw badUserInput('email: an account with this email already exists', {
              problems: [{ field: 'email', message: 'an account with this email already exists' }],
            });
          }
          throw error;
        }
      },
      logIn: async (_: unknown, args: { email: string; password: string }) => {
        const found = await store.findCredentials(args.email.trim());
        const ok = found ? await verifyPassword(args.password, found.passwordHash) : await decoyCheck();
        if (!found || !ok) throw unauthenticated('Wrong email or password.');
        return authPayload(found.user);
      },
    },
    User: {
      __resolveReference: (ref: { id: string }, ctx: UsersContext) => ctx.users.load(ref.id),
    },
  };
}
