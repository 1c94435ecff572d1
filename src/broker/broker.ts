/**
 * The public main-thread object: a thin validating facade over the pools, the slot table, the
 * reservation manager and the port servers (STYLE.md point 2).
 * @module
 */
import { randomBytes } from 'node:crypto';
import { getEnvironmentData, isMainThread, MessageChannel, setEnvironmentData, Worker, type MessagePort, type WorkerOptions } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import type { Piscina } from 'piscina';
import type Tinypool from 'tinypool';
import type { Options as TinypoolOptions } from 'tinypool';
import * as Comlink from 'comlink';
import { Db } from '../client/db.js';
import { PortClient } from '../client/port-client.js';
import { loadConfig } from '../config/load-config.js';
import type { BrokerConfig, DatabaseConfig } from '../config/types.js';
import { createDriver, type Endpoint as ServerEndpoint } from '../drivers/create-driver.js';
import { acquireEmbedded, releaseEmbedded } from '../drivers/embedded/embedded-postgres.js';
import { Errors } from '../errors.js';
import { Pool } from '../pool/pool.js';
import { SlotTable } from '../slots/slot-table.js';
import { localChannel } from '../transport/local-channel.js';
import { servePort, type Endpoint, type Peer } from '../transport/port-server.js';
import { ENV_KEY, PROTOCOL_VERSION, type EnvData, type ReadyMessage } from '../transport/protocol.js';
import { loadPeerModules, wirePiscina, wireTinypool, type PeerModules, type PiscinaOptions } from '../wiring/pools.js';
import { spawnEndpoint, wireWorkerData } from '../wiring/wiring.js';
import { startAdminServer, type AdminServer } from './admin-server.js';
import { renderMetrics } from './metrics.js';
import { RequestHandler } from './request-handler.js';
import { Reservations } from './reservations.js';

/** Figures of one database, as `broker.stats()` reports them. */
export interface DatabaseStats {
  /** The configured cap. */
  max: number;
  /** Connections open now (idle + busy). */
  open: number;
  /** Open and unused. */
  idle: number;
  /** Checked out: running a statement or bound to a reservation. */
  busy: number;
  /** Requests waiting for a connection. */
  waiting: number;
  /** Reservation slots held. */
  reserved: number;
}

/** What `broker.stats()` returns. */
export interface BrokerStats {
  databases: Record<string, DatabaseStats>;
}

/** Options of `Broker.start` beyond the config. */
export interface StartOptions {
  /** Longest time `close()` waits for running statements before destroying their connections. Default 5000. */
  closeTimeoutMillis?: number;
}

/** The key by which `connect()` finds the main thread's broker without importing it. */
const LOCAL_KEY = Symbol.for('threadbroker.local-connect');
const COMLINK_HOST = fileURLToPath(new URL('../../workers/comlink-host.js', import.meta.url));

/**
 * The broker: owns one pool per configured database in the main thread and serves every wired thread.
 *
 * ```ts
 * const broker = await Broker.start('config.json5');
 * const pool = broker.piscina({ filename: new URL('./task.js', import.meta.url).href });
 * console.log(broker.stats());
 * await broker.close();
 * ```
 */
export class Broker {
  /** Random id of this broker; tokens name it. */
  readonly id: string;
  readonly #config: BrokerConfig;
  readonly #pools: Pool[];
  readonly #byName: Map<string, Pool>;
  readonly #table: SlotTable;
  readonly #reservations: Reservations;
  readonly #handler: RequestHandler;
  readonly #env: EnvData;
  readonly #peers = new Set<Peer>();
  readonly #endpoints = new Set<Endpoint>();
  readonly #spawned = new Set<Worker>();
  readonly #mods: PeerModules;
  readonly #closeTimeout: number;
  #local: Db | undefined;
  /** What `connect()` from 'threadbroker/worker' calls in the main thread. */
  readonly #localConnect = (): Db => this.connect();
  #admin: AdminServer | undefined;
  #closing: Promise<void> | undefined;

  private constructor(config: BrokerConfig, mods: PeerModules, opts: StartOptions, embedded: Map<string, ServerEndpoint>) {
    this.id = randomBytes(8).toString('hex');
    this.#config = config;
    this.#mods = mods;
    this.#closeTimeout = opts.closeTimeoutMillis ?? 5000;
    const dbs = Object.values(config.databases);
    this.#pools = dbs.map((c) => new Pool(c, createDriver(c, embedded.get(c.name))));
    this.#byName = new Map(this.#pools.map((p) => [p.name, p]));
    const slotCounts = dbs.map((c) => c.maxReserved);
    this.#table = new SlotTable(slotCounts);
    this.#reservations = new Reservations(this.#table, this.#pools, config);
    this.#handler = new RequestHandler(this.#byName, this.#reservations, new Map(dbs.map((c) => [c.name, c.maxRequestBytes])));
    this.#env = {
      brokerId: this.id,
      slots: this.#table.buffer,
      databases: dbs.map((c) => c.name),
      kinds: dbs.map((c) => c.driver),
      classes: JSON.parse(JSON.stringify(config.classes)) as EnvData['classes'],
      slotCounts,
      tokenKey: new Uint8Array(randomBytes(32)),
      leaseIdleMillis: config.reservations.idleTimeoutMillis,
      leaseMaxMillis: config.reservations.maxLifetimeMillis,
      maxRequestBytes: dbs.map((c) => c.maxRequestBytes),
      forward: dbs.map((c) => c.forwardStatements),
    };
  }

  /**
   * Loads the config (a `config.json5` path or URL, or an object of the same shape) and starts
   * the broker. No connection is opened until the first query needs one.
   * @throws BrokerError `CONFIG_INVALID`
   */
  static async start(source: string | URL | object, opts: StartOptions = {}): Promise<Broker> {
    if (!isMainThread) throw Errors.invalidArgument('Broker.start must run in the main thread; worker threads use connect()');
    const config = await loadConfig(source);
    const embedded = new Map<string, ServerEndpoint>();
    const started: DatabaseConfig[] = [];
    try {
      for (const c of Object.values(config.databases)) {
        if (c.embedded === undefined) continue;
        embedded.set(c.name, await acquireEmbedded(c.embedded, c.name));
        started.push(c);
      }
    } catch (err) {
      await Promise.all(started.map((c) => releaseEmbedded(c.embedded!)));
      throw err;
    }
    const broker = new Broker(config, await loadPeerModules(), opts, embedded);
    if (config.admin !== undefined) {
      try {
        broker.#admin = await startAdminServer(config.admin, () => broker.stats(), () => broker.metrics());
      } catch (err) {
        await broker.close();
        throw Errors.configInvalid(`admin: cannot listen on ${config.admin.host}:${config.admin.port} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    }
    // Threads created from now on learn that a broker exists and may say hello on parentPort.
    setEnvironmentData(ENV_KEY, broker.id);
    (globalThis as Record<symbol, unknown>)[LOCAL_KEY] = broker.#localConnect;
    return broker;
  }

  /** The resolved, frozen config (secrets are not enumerable). */
  get config(): BrokerConfig {
    return this.#config;
  }

  #ready(): ReadyMessage {
    return { t: 'ready', v: PROTOCOL_VERSION, env: this.#env };
  }

  #accept(endpoint: Endpoint): void {
    if (this.#closing !== undefined) {
      endpoint.close();
      return;
    }
    this.#endpoints.add(endpoint);
    const peer = servePort(endpoint, this.#handler, () => this.#ready(), (p) => {
      this.#peers.delete(p);
      this.#endpoints.delete(endpoint);
    });
    this.#peers.add(peer);
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) throw Errors.brokerClosed();
  }

  /**
   * A piscina pool whose workers are wired (`atomics: 'async'` by default; `'sync'` is refused
   * because it blocks the worker's event loop between tasks). In the task: `const db = await connect()`.
   */
  piscina(opts: PiscinaOptions): Piscina {
    this.#checkOpen();
    return wirePiscina(this.#mods, opts, this.id, (port) => this.#accept(port));
  }

  /** A Tinypool whose workers are wired; the task module calls `connect()` as usual. */
  tinypool(opts: TinypoolOptions): Tinypool {
    this.#checkOpen();
    return wireTinypool(this.#mods, opts, (port) => this.#accept(port));
  }

  /**
   * A plain `Worker`, wired: its port travels in `workerData` (under `"threadbroker:wiring"`,
   * beside your own plain-object `workerData`) and its `transferList`.
   */
  worker(filename: string | URL, opts: WorkerOptions = {}): Worker {
    this.#checkOpen();
    const { port1, port2 } = new MessageChannel();
    let workerData: Record<string, unknown>;
    try {
      workerData = wireWorkerData(opts.workerData, { port: port2 });
    } catch (err) {
      port1.close();
      throw Errors.invalidArgument((err as Error).message);
    }
    this.#accept(port1);
    return new Worker(filename, { ...opts, workerData, transferList: [port2, ...(opts.transferList ?? [])] });
  }

  /**
   * Runs a module in a wired worker and returns a comlink `Remote` of its exports: call them as
   * async functions. The worker is terminated by `broker.close()`.
   */
  spawn<T>(module: string | URL, opts: WorkerOptions = {}): Comlink.Remote<T> {
    this.#checkOpen();
    const href = module instanceof URL ? module.href : module.startsWith('file:') ? module : new URL(module, 'file://' + process.cwd() + '/').href;
    const { port1, port2 } = new MessageChannel();
    const workerData = wireWorkerData(opts.workerData, { port: port2, module: href });
    this.#accept(port1);
    const worker = new Worker(COMLINK_HOST, { ...opts, workerData, transferList: [port2, ...(opts.transferList ?? [])] });
    this.#spawned.add(worker);
    worker.once('exit', () => this.#spawned.delete(worker));
    // Calls on a dead or closed worker reject (THREAD_EXITED / BROKER_CLOSED) instead of hanging.
    return Comlink.wrap<T>(spawnEndpoint(worker, () => this.#closing !== undefined));
  }

  /** A port for manual wiring: transfer it to a thread, then `connect(port)` there. */
  port(): MessagePort {
    this.#checkOpen();
    const { port1, port2 } = new MessageChannel();
    this.#accept(port1);
    return port2;
  }

  /** The client API in the main thread, without a thread hop. */
  connect(): Db {
    this.#checkOpen();
    if (this.#local === undefined) {
      const [server, client] = localChannel();
      this.#accept(server);
      this.#local = new Db(PortClient.preopened(client, this.#env));
    }
    return this.#local;
  }

  /** The admin endpoint's URL (`http://127.0.0.1:port`) when `admin` is configured. */
  get adminUrl(): string | undefined {
    return this.#admin?.url;
  }

  /** Per database: `max`, `open`, `idle`, `busy`, `waiting`, `reserved`. */
  stats(): BrokerStats {
    const databases: Record<string, DatabaseStats> = {};
    this.#pools.forEach((pool, i) => {
      const s = pool.stats();
      databases[pool.name] = { max: s.max, open: s.open, idle: s.idle, busy: s.busy, waiting: s.waiting, reserved: this.#reservations.reservedCount(i) };
    });
    return { databases };
  }

  /** The same figures, plus wait and hold time histograms, in Prometheus text exposition format. */
  metrics(): string {
    return renderMetrics(this.stats(), this.#pools, this.#reservations);
  }

  /**
   * Refuses new work (`BROKER_CLOSED`), fails waiters, rolls back open reservations, closes the
   * pools and the ports; resolves within the close timeout, after which busy connections are destroyed.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#handler.close();
      await this.#admin?.close();
      // One deadline for the whole close. Plain waiters are refused first, so connections that
      // reservations roll back and return are not handed to queued plain queries (F9).
      const deadline = Date.now() + this.#closeTimeout;
      for (const p of this.#pools) p.refuse();
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((r) => (timer = setTimeout(r, this.#closeTimeout)));
      await Promise.race([this.#reservations.close(), bound]);
      clearTimeout(timer);
      const left = Math.max(0, deadline - Date.now());
      await Promise.all(this.#pools.map((p) => p.close(left)));
      for (const c of Object.values(this.#config.databases)) if (c.embedded !== undefined) await releaseEmbedded(c.embedded);
      for (const peer of this.#peers) peer.close();
      for (const e of this.#endpoints) e.close();
      await Promise.all([...this.#spawned].map((w) => w.terminate()));
      const g = globalThis as Record<symbol, unknown>;
      if (this.#local !== undefined) this.#local.close();
      // Only this broker's own registrations: a newer broker in the process keeps its wiring.
      if (g[LOCAL_KEY] === this.#localConnect) delete g[LOCAL_KEY];
      if (getEnvironmentData(ENV_KEY) === this.id) setEnvironmentData(ENV_KEY, undefined);
    })();
    return this.#closing;
  }
}
