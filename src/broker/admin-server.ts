/**
 * The optional admin endpoint: GET /stats (JSON) and GET /metrics (Prometheus text), bound to a
 * loopback address only, off unless `admin` is configured. Read-only: nothing here changes state.
 * @module
 */
import { createServer, type Server } from 'node:http';
import type { AdminConfig } from '../config/types.js';

/** A running admin endpoint. */
export interface AdminServer {
  /** The `http://host:port` it listens on. */
  readonly url: string;
  close(): Promise<void>;
}

/** Starts the endpoint; `stats` and `metrics` are read on each request. */
export function startAdminServer(cfg: AdminConfig, stats: () => unknown, metrics: () => string): Promise<AdminServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/stats') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats()));
    } else if (path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metrics());
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('GET /stats or /metrics\n');
    }
  });
  // Scrapes are short; an idle keep-alive socket must not hold close() up.
  server.keepAliveTimeout = 1000;
  server.unref();
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, () => {
      const addr = server.address() as { port: number; address: string };
      const host = addr.address.includes(':') ? `[${addr.address}]` : addr.address;
      resolve({
        url: `http://${host}:${addr.port}`,
        close: () => new Promise<void>((r) => {
          server.closeAllConnections();
          server.close(() => r());
        }),
      });
    });
  });
}
