/**
 * `pg`'s value serialisation, the function its `Query` applies to every bound value. Not in
 * `@types/pg`; the module is reachable through `pg`'s `exports` (`./lib/*`).
 */
declare module 'pg/lib/utils.js' {
  const utils: {
    /** A bound value as `pg` sends it: text, a Buffer, or null. Throws on a circular object. */
    prepareValue(value: unknown): string | Buffer | null;
  };
  export default utils;
}
