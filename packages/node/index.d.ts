// Types of the peersync package (index.js).

/** A better-sqlite3 Database or a node:sqlite DatabaseSync: what load() and the helpers take. */
export interface SqliteDatabase {
  prepare(sql: string): { get(...params: unknown[]): unknown; all(...params: unknown[]): unknown[] };
  loadExtension(file: string): unknown;
}

export type Strategy = 'timestamp_wins' | 'local_wins' | 'remote_wins' | 'manual';
export type ConflictStatus = 'pending' | 'resolved' | 'ignored';
/** 'local', 'remote', 'ignore', or a row: column name to value. */
export type Choice = 'local' | 'remote' | 'ignore' | Record<string, unknown>;
type Int = number | bigint;

export interface Conflict {
  id: Int;
  table_name: string;
  record_id: string;
  kind: 'update' | 'delete' | 'constraint';
  columns: string[];
  open_columns: string[];
  local_data: Record<string, unknown> | null;
  remote_data: Record<string, unknown> | null;
  local_version: Int | null;
  remote_version: Int | null;
  local_device_id: string | null;
  remote_device_id: string | null;
  status: ConflictStatus;
  resolution: unknown;
  created_at: string;
  resolved_at: string | null;
}

/** sync_status() (README, SQL reference); fields not listed here are kept as they come. */
export interface Status {
  device_id: string;
  version: string;
  /** The SQLite library this connection uses. */
  sqlite_version: string;
  /** null, or why that library is unsafe with the sidecar (the WAL-reset bug) and what to do. */
  sqlite_warning: string | null;
  tables: { table: string; strategy: Strategy; columns: string[]; strategy_set_by: string | null; strategy_set_at: string | null }[];
  log: { entries: number; unsynced: number; own_version: number };
  vector: Record<string, number>;
  conflicts_pending: number;
  peers: Record<string, unknown>[];
  links: Record<string, unknown>[];
  [field: string]: unknown;
}

/** The package's version (the same as sync_version() and `peersync --version`). */
export const version: string;
/** Loads the bundled extension into db; warns (process warning PeersyncWarning) when its SQLite has the WAL-reset bug. */
export function load(db: SqliteDatabase): void;
/** The bundled extension's file. */
export function loadablePath(): string;
/** The bundled sidecar binary. */
export function binaryPath(): string;
export function status(db: SqliteDatabase): Status;
export function conflicts(db: SqliteDatabase, state?: ConflictStatus | null): Conflict[];
export function resolve(db: SqliteDatabase, id: Int, choice: Choice): 'resolved' | 'ignored';
