// comlink ships this adapter's types as a .d.ts beside an .mjs, which NodeNext resolution does not pair.
declare module 'comlink/dist/esm/node-adapter.mjs' {
  import type { Endpoint } from 'comlink';
  /** Adapts a Node MessagePort/Worker (on/off) to comlink's DOM-style endpoint. */
  export default function nodeEndpoint(nep: {
    postMessage(message: unknown, transfer?: readonly unknown[]): void;
    on(type: string, listener: (value: unknown) => void): void;
    off(type: string, listener: (value: unknown) => void): void;
    start?: () => void;
  }): Endpoint;
}
