import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { configSchema, DEFAULT_PORTS, SUBGRAPH_NAMES } from '../lib/config.ts';

/**
 * docker-compose.yml cannot run on machines without Docker (CI included), so its wiring is
 * checked against the code instead: services, scripts, ports and variables must all exist.
 */
interface ComposeService {
  image?: string;
  build?: string;
  command?: string;
  environment?: Record<string, string | number>;
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] | string };
}

const compose = parse(readFileSync('docker-compose.yml', 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
};
const scripts = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> })
  .scripts;
const configKeys = new Set(Object.keys(configSchema.shape));
const ours = Object.entries(compose.services).filter(([, service]) => service.build);

describe('docker-compose.yml', () => {
  it('runs the gateway and every subgraph, each with its own npm script', () => {
    expect(ours.map(([name]) => name).sort()).toEqual(['gateway', ...SUBGRAPH_NAMES].sort());
    for (const [name, service] of ours) {
      expect(service.command).toBe(`npm run start:${name}`);
      expect(scripts[`start:${name}`], `package.json script start:${name}`).toBeDefined();
    }
  });

  it('sets only variables the configuration knows', () => {
    for (const [name, service] of ours) {
      for (const variable of Object.keys(service.environment ?? {})) {
        expect(configKeys.has(variable), `${name}: ${variable} is not in lib/config.ts`).toBe(true);
      }
    }
  });

  it('health-checks each service on its own default port and gates start-up on health', () => {
    for (const [name, service] of ours) {
      const port = DEFAULT_PORTS[name as keyof typeof DEFAULT_PORTS];
      expect(JSON.stringify(service.healthcheck?.test)).toContain(`127.0.0.1:${port}/ready`);
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect(compose.services[dependency], `${name} depends on unknown ${dependency}`).toBeDefined();
        expect(condition).toBe('service_healthy');
        expect(compose.services[dependency]?.healthcheck).toBeDefined();
      }
    }
  });

  it('routes the gateway to every subgraph by its service name and publishes port 4000', () => {
    const gateway = compose.services['gateway']!;
    for (const name of SUBGRAPH_NAMES) {
      expect(gateway.environment?.[`SUBGRAPH_${name.toUpperCase()}_URL`]).toBe(
        `http://${name}:${DEFAULT_PORTS[name]}/graphql`,
      );
      expect(gateway.depends_on?.[name]?.condition).toBe('service_healthy');
    }
    expect(gateway.ports).toContain(`${DEFAULT_PORTS.gateway}:${DEFAULT_PORTS.gateway}`);
  });

  it('wires subgraphs to PostgreSQL, Kafka and RabbitMQ services that exist', () => {
    for (const [, service] of ours.filter(([name]) => name !== 'gateway')) {
      const env = service.environment ?? {};
      expect(String(env['DATABASE_URL'])).toMatch(/@postgres:5432\//);
      expect(env['KAFKA_BROKERS']).toBe('kafka:9092');
      expect(String(env['RABBITMQ_URL'])).toMatch(/@rabbitmq:5672$/);
    }
    expect(compose.services['kafka']?.image).toMatch(/^apache\/kafka:3\.9/);
    expect(compose.services['rabbitmq']?.image).toMatch(/management/);
  });
});
