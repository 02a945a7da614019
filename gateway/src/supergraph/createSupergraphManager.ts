import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { SupergraphSdlHook } from '@apollo/gateway';
import { Kind, parse, type ConstDirectiveNode } from 'graphql';
import type { Logger } from '../../../lib/logger.ts';

export interface SubgraphEndpoint {
  name: string;
  url: string;
}

/** The subgraphs a supergraph routes to, from its `join__Graph` enum. */
export function subgraphsOf(supergraphSdl: string): SubgraphEndpoint[] {
  const document = parse(supergraphSdl, { noLocation: true });
  const joinGraph = document.definitions.find(
    (d) => d.kind === Kind.ENUM_TYPE_DEFINITION && d.name.value === 'join__Graph',
  );
  if (joinGraph?.kind !== Kind.ENUM_TYPE_DEFINITION) return [];
  const argument = (directive: ConstDirectiveNode, name: string) => {
    const value = directive.arguments?.find((a) => a.name.value === name)?.value;
    return value?.kind === Kind.STRING ? value.value : undefined;
  };
  return (joinGraph.values ?? []).flatMap((value) => {
    const directive = value.directives?.find((d) => d.name.value === 'join__graph');
    const name = directive && argument(directive, 'name');
    const url = directive && argument(directive, 'url');
    return name && url ? [{ name, url }] : [];
  });
}

/**
 * Feeds @apollo/gateway the supergraph file and hot-reloads it: a change on disk (npm run
 * compose, a deploy) is applied without a restart; a broken file is logged and the previous
 * supergraph keeps serving.
 */
export function createSupergraphManager({
  path,
  logger,
  debounceMs = 100,
}: {
  path: string;
  logger: Logger;
  debounceMs?: number;
}) {
  const file = resolve(path);
  let current = '';
  let endpoints: SubgraphEndpoint[] = [];
  const listeners = new Set<(endpoints: SubgraphEndpoint[]) => void>();

  const accept = (sdl: string) => {
    endpoints = subgraphsOf(sdl);
    current = sdl;
    for (const listener of listeners) listener(endpoints);
  };

  const hook: SupergraphSdlHook = async ({ update }) => {
    accept(await readFile(file, 'utf8'));
    let timer: NodeJS.Timeout | undefined;
    const reload = async () => {
      let next: string;
      try {
        next = await readFile(file, 'utf8');
      } catch (error) {
        logger.warn({ err: error, file }, 'supergraph file unreadable; keeping the current one');
        return;
      }
      if (next === current || next.trim() === '') return;
      try {
        subgraphsOf(next); // a syntax error surfaces here, before the gateway sees it
        update(next);
        accept(next);
        logger.info({ file, subgraphs: endpoints.map((e) => e.name) }, 'supergraph reloaded');
      } catch (error) {
        logger.error({ err: error, file }, 'new supergraph rejected; keeping the current one');
      }
    };
    // Watch the directory, not the file: editors and `compose` may replace the file (new inode).
    const watcher: FSWatcher = watch(dirname(file), (_event, name) => {
      if (name !== basename(file)) return;
      clearTimeout(timer);
      timer = setTimeout(() => void reload(), debounceMs);
    });
    watcher.on('error', (error) => logger.error({ err: error }, 'supergraph watcher failed'));
    return {
      supergraphSdl: current,
      cleanup: () => {
        clearTimeout(timer);
        watcher.close();
        return Promise.resolve();
      },
    };
  };

  return {
    hook,
    endpoints: () => endpoints,
    onChange(listener: (endpoints: SubgraphEndpoint[]) => void) {
      listeners.add(listener);
    },
  };
}
