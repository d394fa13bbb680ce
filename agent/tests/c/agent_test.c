/* The C ABI from C: peersync.h and the static library, against a running `peersync serve`.
 * Usage: agent_test DB KEY_FILE PEER_URL DEAD_URL
 * (KEY_FILE: the device's PKCS#8 PEM; DEAD_URL: a loopback port nothing listens on.)
 * Prints one line per check and "N passed, N failed"; exits non-zero if any failed. */
#include "peersync.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The bundled SQLite's own functions (the static library holds them). */
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
int sqlite3_open(const char *path, sqlite3 **db);
int sqlite3_close(sqlite3 *db);
int sqlite3_auto_extension(void (*entry)(void));
int sqlite3_prepare_v2(sqlite3 *db, const char *sql, int n, sqlite3_stmt **stmt, const char **tail);
int sqlite3_step(sqlite3_stmt *stmt);
const unsigned char *sqlite3_column_text(sqlite3_stmt *stmt, int col);
int sqlite3_finalize(sqlite3_stmt *stmt);
#define SQLITE_ROW 100

static int passed, failed;

static void check(int ok, const char *what) {
    printf("%s: %s\n", ok ? "ok" : "FAIL", what);
    if (!ok) printf("  last error: %s\n", peersync_last_error());
    ok ? passed++ : failed++;
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = malloc(65536);
    *len = fread(buf, 1, 65536, f);
    fclose(f);
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s DB KEY_FILE PEER_URL DEAD_URL\n", argv[0]);
        return 2;
    }
    const char *db = argv[1], *peer = argv[3], *dead = argv[4];
    size_t key_len = 0;
    unsigned char *key = read_file(argv[2], &key_len);
    check(key != NULL && key_len > 0, "key file read");

    peersync_agent *a = NULL;
    char *json = NULL;

    /* Error paths: a code and a message, nothing done. */
    check(peersync_agent_open(NULL, key, key_len, &a) == PEERSYNC_INVALID_ARGUMENT && a == NULL
              && strstr(peersync_last_error(), "db_path") != NULL,
          "open with a NULL path is INVALID_ARGUMENT, with a message");
    check(peersync_agent_open(db, key, key_len, NULL) == PEERSYNC_INVALID_ARGUMENT, "open with a NULL out is INVALID_ARGUMENT");
    check(peersync_agent_open(db, key, 31, &a) == PEERSYNC_KEY && a == NULL, "31 key bytes are PEERSYNC_KEY");
    unsigned char other_seed[32];
    memset(other_seed, 42, sizeof other_seed);
    check(peersync_agent_open(db, other_seed, 32, &a) == PEERSYNC_KEY
              && strstr(peersync_last_error(), "not this database's") != NULL,
          "another device's key is PEERSYNC_KEY");
    check(peersync_agent_open("/nonexistent/x.db", key, key_len, &a) == PEERSYNC_DATABASE, "a missing database is PEERSYNC_DATABASE");
    check(peersync_agent_status(NULL, &json) == PEERSYNC_CLOSED && json == NULL, "a NULL handle is PEERSYNC_CLOSED");

    /* The real thing. */
    check(peersync_agent_open(db, key, key_len, &a) == PEERSYNC_OK && a != NULL, "open");
    check(strcmp(peersync_last_error(), "") == 0, "no message after success");
    check(peersync_agent_sync_once(a, peer, &json) == PEERSYNC_OK && json && strstr(json, "\"sent\""), "sync_once with the sidecar");
    if (json) printf("  report: %s\n", json);
    peersync_string_free(json);
    json = NULL;
    check(peersync_agent_status(a, &json) == PEERSYNC_OK && json && json[0] == '{', "status");
    peersync_string_free(json);
    json = NULL;
    check(peersync_agent_conflicts(a, &json) == PEERSYNC_OK && json && json[0] == '[', "conflicts");
    peersync_string_free(json);
    json = NULL;
    check(peersync_agent_resolve(a, 999999, "local", &json) == PEERSYNC_INVALID_ARGUMENT && json == NULL, "resolving an unknown conflict is INVALID_ARGUMENT");
    check(peersync_agent_resolve(a, 1, "sideways", &json) == PEERSYNC_INVALID_ARGUMENT, "a bad choice is INVALID_ARGUMENT");
    check(peersync_agent_sync_once(a, dead, &json) == PEERSYNC_UNREACHABLE && json == NULL, "a refused connection is PEERSYNC_UNREACHABLE");
    check(peersync_agent_sync_once(a, "ftp://x", &json) == PEERSYNC_INVALID_ARGUMENT, "a non-http URL is INVALID_ARGUMENT");
    check(peersync_agent_sync_once(a, "http://127.0.0.1:1/\xff", &json) == PEERSYNC_INVALID_ARGUMENT
              && strstr(peersync_last_error(), "UTF-8") != NULL,
          "invalid UTF-8 is INVALID_ARGUMENT");
    check(peersync_agent_pair(a, "not a code", &json) == PEERSYNC_INVALID_ARGUMENT, "a malformed pairing code is INVALID_ARGUMENT");
    check(peersync_agent_cancel(a) == PEERSYNC_OK, "cancel with nothing running");
    check(peersync_agent_close(a) == PEERSYNC_OK, "close");
    check(peersync_agent_close(a) == PEERSYNC_CLOSED, "a second close is PEERSYNC_CLOSED");
    check(peersync_agent_status(a, &json) == PEERSYNC_CLOSED && json == NULL, "a closed handle is PEERSYNC_CLOSED");
    peersync_string_free(NULL);

    /* The static entry point: the app's own connections through the bundled SQLite. */
    check(sqlite3_auto_extension((void (*)(void))sqlite3_peersync_init) == 0, "sqlite3_auto_extension(sqlite3_peersync_init)");
    sqlite3 *conn = NULL;
    sqlite3_stmt *st = NULL;
    check(sqlite3_open(":memory:", &conn) == 0, "sqlite3_open on the bundled SQLite");
    int prepared = sqlite3_prepare_v2(conn, "select sync_version()", -1, &st, NULL) == 0;
    check(prepared && sqlite3_step(st) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), peersync_version()) == 0,
          "select sync_version() on an app connection is peersync_version()");
    sqlite3_finalize(st);
    sqlite3_close(conn);

    free(key);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
