import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Kind, parse, type OperationDefinitionNode } from 'graphql';

/** What the proxy does with a request whose root field matches a rule. */
export type ProxyAction =
  /** Keeps the request until released, then forwards it (a late delivery, as a network may). */
  | 'hold-request'
  /** Forwards the request at once, keeps the reply until released (the callee acted, the caller never heard). */
  | 'hold-reply'
  /** Answers with a GraphQL error of this code, never forwarding. */
  | { errorCode: string }
  /** Cuts the connection without forwarding: the callee is unreachable. */
  | 'disconnect'
  /** Forwards, and cuts the caller's connection at once: the callee acts, the caller never hears. */
  | 'drop-reply';

export interface ProxyRule {
  /** The operation's first root field, e.g. `chargePayment`. */
  field: string;
  /** Narrows the rule to some requests (by their variables); all of the field's by default. */
  when?: (variables: Record<string, unknown>) => boolean;
  action: ProxyAction;
  /** Applies to this many matching requests, then no more; every one by default. */
  times?: number;
}

export interface SeenRequest {
  route: string;
  field: string | null;
  variables: Record<string, unknown>;
}

interface Held extends SeenRequest {
  action: 'hold-request' | 'hold-reply';
  release: () => void;
}

/**
 * The network between a service under test and its siblings, made controllable: each route
 * (`/<route>/graphql`) forwards to its target endpoint, except requests matching a rule, which
 * it holds or fails. Lets a test stop a saga at an exact step without a hook in the code under test.
 */
export function createHoldingProxy() {
  const targets = new Map<string, string>();
  const rules: ProxyRule[] = [];
  const held: Held[] = [];
  const seen: SeenRequest[] = [];
  const pending = new Set<Promise<unknown>>();

  function rootField(query: unknown): string | null {
    if (typeof query !== 'string') return null;
    try {
      const operation = parse(query).definitions.find(
        (d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION,
      );
      const first = operation?.selectionSet.selections[0];
      return first?.kind === Kind.FIELD ? first.name.value : null;
    } catch {
      return null;
    }
  }

  async function forward(target: string, req: IncomingMessage, body: Buffer) {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === 'string' && !['host', 'connection', 'content-length'].includes(name)) {
        headers[name] = value;
      }
    }
    const response = await fetch(target, { method: req.method, headers, body: body.length ? body : null });
    return {
      status: response.status,
      contentType: response.headers.get('content-type') ?? 'application/json',
      body: Buffer.from(await response.arrayBuffer()),
    };
  }

  function reply(res: ServerResponse, status: number, contentType: string, body: Buffer | string) {
    // The caller may be gone (killed) by the time a held reply is let through.
    if (res.destroyed || res.writableEnded) return;
    res.writeHead(status, { 'content-type': contentType }).end(body);
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const route = (req.url ?? '/').split('/')[1] ?? '';
    const target = targets.get(route);
    if (!target) return reply(res, 502, 'text/plain', `no target for route ${route}`);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    let request: { query?: unknown; variables?: Record<string, unknown> } = {};
    try {
      request = JSON.parse(body.toString('utf8')) as typeof request;
    } catch {
      // not GraphQL over JSON (a health check): forwarded as is
    }
    const entry: SeenRequest = { route, field: rootField(request.query), variables: request.variables ?? {} };
    seen.push(entry);
    const rule = rules.find(
      (r) => r.field === entry.field && (r.times ?? 1) > 0 && (r.when?.(entry.variables) ?? true),
    );
    if (rule?.times !== undefined) rule.times -= 1;
    const send = (result: Awaited<ReturnType<typeof forward>>) =>
      reply(res, result.status, result.contentType, result.body);
    const fail = (error: unknown) => reply(res, 502, 'text/plain', String(error));
    if (!rule) return forward(target, req, body).then(send, fail);
    const { action } = rule;
    if (action === 'disconnect') return void res.destroy();
    if (action === 'drop-reply') {
      void forward(target, req, body).catch(() => undefined);
      return void res.destroy();
    }
    if (typeof action === 'object') {
      const error = {
        message: `${entry.field} refused by the test proxy`,
        extensions: { code: action.errorCode },
      };
      return reply(res, 200, 'application/json', JSON.stringify({ errors: [error] }));
    }
    if (action === 'hold-request') {
      await new Promise<void>((release) => held.push({ ...entry, action, release }));
      return forward(target, req, body).then(send, fail);
    }
    const result = forward(target, req, body);
    await new Promise<void>((release) => held.push({ ...entry, action, release }));
    return result.then(send, fail);
  }

  const server = createServer((req, res) => {
    const work = handle(req, res).catch((error: unknown) => reply(res, 500, 'text/plain', String(error)));
    pending.add(work);
    void work.finally(() => pending.delete(work));
  });

  return {
    async start(): Promise<void> {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    },
    /** The proxy's URL for a route: requests to it go to the route's target. */
    urlFor(route: string): string {
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}/${route}/graphql`;
    },
    /** Where a route's requests go: one GraphQL endpoint URL. */
    route(route: string, targetUrl: string) {
      targets.set(route, targetUrl);
    },
    /** Adds a rule; the first matching rule applies. Returns what takes it away again. */
    add(rule: ProxyRule): () => void {
      const added = { ...rule };
      rules.push(added);
      return () => {
        const index = rules.indexOf(added);
        if (index >= 0) rules.splice(index, 1);
      };
    },
    /** Drops every rule and lets every held request or reply through. */
    releaseAll() {
      rules.length = 0;
      for (const entry of held.splice(0)) entry.release();
    },
    /** Requests held now (not yet released). */
    held(): readonly SeenRequest[] {
      return held;
    },
    /** Every request received, in order. */
    seen(): readonly SeenRequest[] {
      return seen;
    },
    async stop(): Promise<void> {
      this.releaseAll();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.allSettled([...pending]);
    },
  };
}
export type HoldingProxy = ReturnType<typeof createHoldingProxy>;
