/**
 * What the mapper keeps per client (`Db`): the resolved class maps, one model per class, the
 * change-notice channel and the units of work of its reservations. `Db.model` calls
 * {@link modelOf}; nothing is built before a model is first asked for.
 * @module
 */
import type { DatabaseHandle } from '../client/db.js';
import type { Reservation } from '../client/reservation.js';
import { Errors } from '../errors.js';
import type { EnvData } from '../transport/protocol.js';
import { buildClassMap } from './class-map.js';
import { ChangeNotices } from './change-notices.js';
import { Model, type ModelContext } from './model.js';
import type { UnitOfWork } from './unit-of-work.js';

/**
 * The part of a client the mapper uses: a `Db` is one.
 *
 * ```ts
 * const host: ModelHost = db;
 * ```
 */
export interface ModelHost {
  database(name: string): DatabaseHandle;
}

interface Context extends ModelContext {
  readonly models: Map<string, Model<object>>;
}

const contexts = new WeakMap<ModelHost, Context>();

function contextOf(host: ModelHost, env: EnvData): Context {
  let ctx = contexts.get(host);
  if (ctx === undefined) {
    ctx = {
      notices: new ChangeNotices(env.brokerId),
      units: new WeakMap<Reservation, UnitOfWork>(),
      handle: (database: string) => host.database(database),
      models: new Map(),
    };
    contexts.set(host, ctx);
  }
  return ctx;
}

/**
 * The model of class `name` for client `host`, built on first use and then reused.
 *
 * ```ts
 * const users = modelOf<User>(db, client.env, 'User'); // what db.model<User>('User') does
 * ```
 * @throws BrokerError `UNKNOWN_CLASS` for a name the config does not map; `IDENTIFIER_INVALID`
 *   if its identifiers break the rules (the config loader refuses those first)
 */
export function modelOf<T extends object>(host: ModelHost, env: EnvData, name: string): Model<T> {
  const classes = env.classes ?? {};
  if (typeof name !== 'string' || !Object.hasOwn(classes, name)) {
    throw Errors.unknownClass(typeof name === 'string' ? name.slice(0, 100) : String(typeof name), Object.keys(classes));
  }
  const ctx = contextOf(host, env);
  let model = ctx.models.get(name);
  if (model === undefined) {
    const info = classes[name];
    const index = env.databases.indexOf(info.database);
    if (index < 0) throw Errors.unknownDatabase(info.database, env.databases);
    model = new Model<object>(ctx, buildClassMap(info, env.kinds[index]));
    ctx.models.set(name, model);
  }
  return model as Model<T>;
}

