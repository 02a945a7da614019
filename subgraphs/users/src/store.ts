import { randomUUID } from 'node:crypto';
import type { Role } from '../../../lib/auth/tokens.ts';
import { isUniqueViolation, type Database, type Queryable } from '../../../lib/db/createDatabase.ts';
import { appendEvent } from '../../../lib/outbox/appendEvent.ts';
import { findByUuids } from '../../../lib/db/findByUuids.ts';

export interface UserRecord {
  id: string;
  email: string;
  name: string;
  role: Role;
  createdAt: Date;
}

interface UserRow {
  id: string;
  email: string;
  name: string;
  role: Role;
  created_at: Date;
  password_hash: string;
}

const toRecord = (row: UserRow): UserRecord => ({
  id: row.id,
  email: row.email,
  name: row.name,
  role: row.role,
  createdAt: row.created_at,
});

export class DuplicateEmailError extends Error {
  constructor(email: string) {
    super(`an account with email ${email} already exists`);
  }
}

/** Topic of the users' events (keyed by user id). */
export const USER_EVENTS_TOPIC = 'user-events';

export interface UserSignedUp {
  userId: string;
  email: string;
  name: string;
}

interface NewUser {
  id?: string;
  email: string;
  name: string;
  role: Role;
  passwordHash: string;
}

export function createUserStore(db: Database) {
  async function create(input: NewUser, tx: Queryable = db): Promise<UserRecord> {
    try {
      const [row] = await tx.query<UserRow>(
        `INSERT INTO users (id, email, name, role, password_hash) VALUES ($1, $2, $3, $4, $5)
         RETURNING id, email, name, role, created_at, password_hash`,
        [input.id ?? randomUUID(), input.email, input.name, input.role, input.passwordHash],
      );
      return toRecord(row!);
    } catch (error) {
      if (isUniqueViolation(error)) throw new DuplicateEmailError(input.email);
      throw error;
    }
  }

  return {
    create,

    /** The account and its UserSignedUp event, in one transaction (the outbox). */
    signUp(input: NewUser): Promise<UserRecord> {
      return db.transaction(async (tx) => {
        const user = await create(input, tx);
        await appendEvent<UserSignedUp>(tx, {
          topic: USER_EVENTS_TOPIC,
          eventType: 'UserSignedUp',
          aggregateId: user.id,
          version: 1,
          data: { userId: user.id, email: user.email, name: user.name },
        });
        return user;
      });
    },

    async findCredentials(email: string): Promise<{ user: UserRecord; passwordHash: string } | null> {
      const [row] = await db.query<UserRow>('SELECT * FROM users WHERE lower(email) = lower($1)', [email]);
      return row ? { user: toRecord(row), passwordHash: row.password_hash } : null;
    },

    /** One query for any number of ids (the entity DataLoader's batch function). */
    findByIds: (ids: readonly string[]) =>
      findByUuids(
        db,
        'SELECT * FROM users WHERE id = ANY($1::uuid[])',
        ids,
        (row: UserRow) => row.id,
        toRecord,
      ),

    async hasAdmin(): Promise<boolean> {
      const rows = await db.query("SELECT 1 FROM users WHERE role = 'ADMIN' LIMIT 1");
      return rows.length > 0;
    },
  };
}
export type UserStore = ReturnType<typeof createUserStore>;
