/**
 * A fault-injecting TCP proxy of our own (RELIABILITY.md §1.6 option 1), with Toxiproxy's fault
 * set: latency ± jitter, a black hole (no FIN, no RST: both sockets paused, data held), reset
 * (RST), cut after N bytes, a slicer (1-byte writes), `down` (refuse new connections, drop
 * existing ones), a delay on new connections, a one-shot cut when a statement goes by (to land a
 * fault during COMMIT), per-connection kills, and byte/connection counters (the "driver spy"
 * seen from the wire). Loopback only: it listens on 127.0.0.1 and forwards to a 127.0.0.1 target.
 *
 * ```ts
 * const proxy = await TcpProxy.start({ host: '127.0.0.1', port: 5432 });
 * const url = proxy.rewrite('postgres://tb_rel@127.0.0.1:5432/test'); // point the broker at it
 * proxy.latency(200, 50);   // downstream, per chunk
 * proxy.blackhole(true);    // ... and later proxy.blackhole(false)
 * await proxy.close();
 * ```
 */
import net from 'node:net';

/** Which way data flows: client → server is `upstream`, server → client `downstream`. */
export type Direction = 'upstream' | 'downstream';
type Dirs = Direction | 'both';

interface Latency { millis: number; jitter: number; dirs: Dirs }
interface Slicer { size: number; delayMicros: number; dirs: Dirs }
interface Limit { bytes: number; dirs: Dirs }
/** A one-shot cut when `match` goes upstream: `before` drops it, `after-reply` lets the server run it and drops its reply. */
export interface CutRule { match: string; mode: 'before' | 'after-reply'; fired?: (conn: ProxyConnection) => void }

const wants = (dirs: Dirs, d: Direction): boolean => dirs === 'both' || dirs === d;

/** One proxied connection: the client's socket and the server's. */
export class ProxyConnection {
  readonly index: number;
  readonly client: net.Socket;
  readonly server: net.Socket;
  /** Bytes forwarded each way on this connection. */
  readonly forwarded = { upstream: 0, downstream: 0 };
  closed = false;
  /** The first bytes of the last chunk the client sent (latin1), to find the connection of a statement. */
  lastUpstream = '';
  /** True once the client side ended or was destroyed by the client (not by the proxy). */
  clientClosedFirst = false;
  readonly #proxy: TcpProxy;
  readonly #pumps: Record<Direction, Pump>;
  #dropReplies = false;

  constructor(proxy: TcpProxy, index: number, client: net.Socket, server: net.Socket) {
    this.#proxy = proxy;
    this.index = index;
    this.client = client;
    this.server = server;
    client.setNoDelay(true);
    server.setNoDelay(true);
    this.#pumps = {
      upstream: new Pump(this, 'upstream', client, server, proxy),
      downstream: new Pump(this, 'downstream', server, client, proxy),
    };
    const onClose = (who: 'client' | 'server') => () => {
      if (!this.closed && who === 'client') this.clientClosedFirst = true;
      this.#teardown(who === 'client' ? server : client);
    };
    client.on('close', onClose('client'));
    server.on('close', onClose('server'));
    client.on('error', () => undefined);
    server.on('error', () => undefined);
  }

  /** @internal the pumps ask before forwarding a chunk. */
  inspect(dir: Direction, chunk: Buffer): 'forward' | 'drop' {
    if (dir === 'downstream') {
      if (!this.#dropReplies) return 'forward';
      // The reply of a statement the server ran: the client never sees it.
      this.reset();
      return 'drop';
    }
    this.lastUpstream = chunk.subarray(0, 512).toString('latin1');
    const rule = this.#proxy.takeCut(chunk);
    if (rule === undefined) return 'forward';
    rule.fired?.(this);
    if (rule.mode === 'before') {
      this.reset();
      return 'drop';
    }
    this.#dropReplies = true;
    return 'forward';
  }

  /** Resumes both directions (after a black hole). */
  resume(): void {
    this.#pumps.upstream.resume();
    this.#pumps.downstream.resume();
  }

  /** Pauses both directions: nothing is read, nothing is written, nothing is closed. */
  pause(): void {
    this.#pumps.upstream.pause();
    this.#pumps.downstream.pause();
  }

  /** Sends the client an RST and closes the server side. */
  reset(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.resetAndDestroy();
    this.server.destroy();
  }

  /** Closes both sides with a FIN. */
  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.destroy();
    this.server.destroy();
  }

  #teardown(other: net.Socket): void {
    if (!this.closed) {
      this.closed = true;
      other.destroy();
    }
    this.#proxy.forget(this);
  }
}

/** Moves the bytes of one direction, applying the proxy's toxics in order. */
class Pump {
  readonly #conn: ProxyConnection;
  readonly #dir: Direction;
  readonly #from: net.Socket;
  readonly #to: net.Socket;
  readonly #proxy: TcpProxy;
  readonly #queue: Buffer[] = [];
  #busy = false;
  #paused = false;
  #lastDue = 0;

  constructor(conn: ProxyConnection, dir: Direction, from: net.Socket, to: net.Socket, proxy: TcpProxy) {
    this.#conn = conn;
    this.#dir = dir;
    this.#from = from;
    this.#to = to;
    this.#proxy = proxy;
    from.on('data', (chunk: Buffer) => this.#push(chunk));
  }

  pause(): void {
    this.#paused = true;
    this.#from.pause();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#from.resume();
    void this.#drain();
  }

  #push(chunk: Buffer): void {
    if (this.#conn.closed) return;
    if (this.#conn.inspect(this.#dir, chunk) === 'drop') return;
    this.#queue.push(chunk);
    void this.#drain();
  }

  async #drain(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      while (this.#queue.length > 0 && !this.#paused && !this.#conn.closed) {
        const chunk = this.#queue.shift()!;
        await this.#send(chunk);
      }
    } finally {
      this.#busy = false;
    }
  }

  async #send(chunk: Buffer): Promise<void> {
    const lat = this.#proxy.latencyToxic;
    if (lat !== undefined && wants(lat.dirs, this.#dir)) {
      // Order is kept: a chunk is never due before the one ahead of it.
      const delay = lat.millis + (lat.jitter > 0 ? (Math.random() * 2 - 1) * lat.jitter : 0);
      const due = Math.max(this.#lastDue, performance.now() + Math.max(0, delay));
      this.#lastDue = due;
      await sleep(due - performance.now());
    }
    const data = chunk;
    const limit = this.#proxy.limitToxic;
    if (limit !== undefined && wants(limit.dirs, this.#dir)) {
      const left = limit.bytes - this.#conn.forwarded[this.#dir];
      if (left <= 0) {
        this.#conn.end();
        return;
      }
      if (data.length >= left) {
        this.#write(data.subarray(0, left));
        // Cut after exactly N bytes: the rest of the result never arrives.
        setImmediate(() => this.#conn.end());
        return;
      }
    }
    const slicer = this.#proxy.slicerToxic;
    if (slicer !== undefined && wants(slicer.dirs, this.#dir)) {
      for (let at = 0; at < data.length && !this.#conn.closed; at += slicer.size) {
        this.#write(data.subarray(at, at + slicer.size));
        // A pause between slices, so the peer reads them one by one.
        if (slicer.delayMicros >= 1000) await sleep(slicer.delayMicros / 1000);
        else await new Promise((r) => setImmediate(r));
      }
      return;
    }
    if (!this.#write(data)) await new Promise((r) => this.#to.once('drain', r));
  }

  #write(data: Buffer): boolean {
    if (this.#conn.closed || this.#to.destroyed) return true;
    this.#conn.forwarded[this.#dir] += data.length;
    this.#proxy.bytes[this.#dir] += data.length;
    return this.#to.write(data);
  }
}

function sleep(millis: number): Promise<void> {
  return millis <= 0 ? Promise.resolve() : new Promise((r) => setTimeout(r, millis));
}

/** The proxy. Toxics apply to live connections and to new ones until cleared. */
export class TcpProxy {
  readonly target: { host: string; port: number };
  /** Connections accepted since start (or since `resetCounters`). */
  accepted = 0;
  /** Bytes forwarded each way, all connections. */
  readonly bytes = { upstream: 0, downstream: 0 };
  latencyToxic: Latency | undefined;
  slicerToxic: Slicer | undefined;
  limitToxic: Limit | undefined;
  #connectDelay = 0;
  #holed = false;
  #cuts: CutRule[] = [];
  readonly #live = new Set<ProxyConnection>();
  #server: net.Server | undefined;
  #port = 0;
  #next = 0;

  private constructor(target: { host: string; port: number }) {
    if (!isLoopback(target.host)) throw new Error(`the proxy forwards to loopback only, not ${target.host}`);
    this.target = target;
  }

  /** Starts a proxy on 127.0.0.1 (a free port unless given) in front of `target`. */
  static async start(target: { host: string; port: number }, port = 0): Promise<TcpProxy> {
    const p = new TcpProxy(target);
    await p.#listen(port);
    return p;
  }

  /** The port the proxy listens on. */
  get port(): number {
    return this.#port;
  }

  /** `url` with its host and port replaced by the proxy's. */
  rewrite(url: string): string {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    u.port = String(this.#port);
    return u.href;
  }

  /** Live connections, oldest first. */
  connections(): ProxyConnection[] {
    return [...this.#live];
  }

  // ---- toxics ----

  /** Adds `millis` ± `jitter` to every chunk in `dirs` (default: downstream, as Toxiproxy does). */
  latency(millis: number, jitter = 0, dirs: Dirs = 'downstream'): void {
    this.latencyToxic = millis > 0 || jitter > 0 ? { millis, jitter, dirs } : undefined;
  }

  /** Delays every new connection's upstream connect by `millis` (a slow server handshake). */
  connectLatency(millis: number): void {
    this.#connectDelay = millis;
  }

  /** Cuts writes into `size`-byte pieces with a pause between them. */
  slicer(size = 1, delayMicros = 0, dirs: Dirs = 'downstream'): void {
    this.slicerToxic = size > 0 ? { size, delayMicros, dirs } : undefined;
  }

  /** Closes each connection once `bytes` have been forwarded in `dirs` (counted per connection). */
  limitData(bytes: number, dirs: Dirs = 'downstream'): void {
    this.limitToxic = bytes >= 0 ? { bytes, dirs } : undefined;
  }

  /**
   * A black hole: no byte moves either way and nothing is closed (no FIN, no RST), for live
   * connections and new ones, until lifted. Held bytes flow again when lifted, as after a healed partition.
   */
  blackhole(on: boolean): void {
    this.#holed = on;
    for (const c of this.#live) {
      if (on) c.pause();
      else c.resume();
    }
  }

  /** Sends every live client an RST (Toxiproxy `reset_peer`). */
  resetAll(): number {
    const n = this.#live.size;
    for (const c of [...this.#live]) c.reset();
    return n;
  }

  /** Arms a one-shot cut for the next connection that sends `match` upstream. */
  cutOn(rule: CutRule): void {
    this.#cuts.push(rule);
  }

  /** @internal */
  takeCut(chunk: Buffer): CutRule | undefined {
    if (this.#cuts.length === 0) return undefined;
    const text = chunk.toString('latin1');
    const i = this.#cuts.findIndex((r) => text.includes(r.match));
    if (i < 0) return undefined;
    return this.#cuts.splice(i, 1)[0];
  }

  /** `down`: refuses new connections (connection refused) and drops live ones. */
  async down(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const c of [...this.#live]) c.end();
    if (server !== undefined) await new Promise<void>((r) => server.close(() => r()));
  }

  /** Undoes `down`, on the same port. */
  async up(): Promise<void> {
    if (this.#server === undefined) await this.#listen(this.#port);
  }

  /** Removes every toxic (a black hole is lifted). */
  clear(): void {
    this.latencyToxic = undefined;
    this.slicerToxic = undefined;
    this.limitToxic = undefined;
    this.#connectDelay = 0;
    this.#cuts = [];
    if (this.#holed) this.blackhole(false);
  }

  resetCounters(): void {
    this.accepted = 0;
    this.bytes.upstream = 0;
    this.bytes.downstream = 0;
  }

  /** Stops listening and drops every connection. */
  async close(): Promise<void> {
    this.clear();
    await this.down();
  }

  /** @internal */
  forget(c: ProxyConnection): void {
    this.#live.delete(c);
  }

  async #listen(port: number): Promise<void> {
    const server = net.createServer({ pauseOnConnect: true }, (client) => this.#accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
    this.#port = (server.address() as net.AddressInfo).port;
  }

  #accept(client: net.Socket): void {
    this.accepted++;
    client.on('error', () => undefined);
    const open = (): void => {
      if (this.#server === undefined || client.destroyed) {
        client.destroy();
        return;
      }
      const server = net.connect({ host: this.target.host, port: this.target.port });
      server.on('error', () => client.destroy());
      const conn = new ProxyConnection(this, this.#next++, client, server);
      this.#live.add(conn);
      // The client socket was accepted paused; a black hole keeps it so (resume() on lifting).
      if (this.#holed) conn.pause();
      else client.resume();
    };
    if (this.#connectDelay > 0) setTimeout(open, this.#connectDelay);
    else open();
  }
}

function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '::1';
}
