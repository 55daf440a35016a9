/* The HTTP transport against a real HTTP/1.1 peer on loopback
 * (tests/servers/http_peer.py): bodies both ways, status codes, headers,
 * the response cap, keep-alive, refused and reset connections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../common/store/http.h"

static FILE *peer;
static int port;

static int peer_start(void **state)
{
	(void)state;
	const char *script = getenv("HTTP_PEER");
	if (!script)
		script = "tests/servers/http_peer.py";
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s", script);
	/* The peer prints its port into a file, then serves until its stdin
	 * (our pipe) closes. */
	char fifo[] = "/tmp/sm-http-peer-XXXXXX";
	if (!mkdtemp(fifo))
		return -1;
	char portfile[128];
	snprintf(portfile, sizeof(portfile), "%s/port", fifo);
	char full[1400];
	snprintf(full, sizeof(full), "%s > %s", cmd, portfile);
	peer = popen(full, "w");
	if (!peer)
		return -1;
	for (int i = 0; i < 100 && port == 0; i++) {
		FILE *f = fopen(portfile, "r");
		if (f) {
			if (fscanf(f, "%d", &port) != 1)
				port = 0;
			fclose(f);
		}
		if (!port)
			sm_sleep_ms(50);
	}
	unlink(portfile);
	rmdir(fifo);
	if (!port) {
		fprintf(stderr, "http peer did not start (%s)\n", cmd);
		return -1;
	}
	return 0;
}

static int peer_stop(void **state)
{
	(void)state;
	if (peer)
		pclose(peer);
	return 0;
}

static void url(char *buf, size_t n, const char *path)
{
	snprintf(buf, n, "http://127.0.0.1:%d%s", port, path);
}

static void test_bodies_and_status(void **state)
{
	(void)state;
	struct sm_http_cfg cfg = { 0 };
	struct sm_http *h = NULL;
	struct sm_diag d;
	assert_int_equal(sm_http_new(&cfg, &h, &d), SM_OK);
	char u[128];
	struct sm_buf resp = { 0 };
	struct sm_kv hdr[] = { { "X-Test", "1" } };
	url(u, sizeof(u), "/echo");
	struct sm_http_req r = { .method = "PUT",
		                 .url = u,
		                 .headers = hdr,
		                 .n_headers = 1,
		                 .body = "hello",
		                 .body_len = 5,
		                 .resp = &resp };
	assert_int_equal(sm_http_do(h, &r, &d), SM_OK);
	assert_int_equal(r.status, 200);
	assert_int_equal(resp.len, 5);
	assert_memory_equal(resp.p, "hello", 5);
	assert_string_equal(r.etag, "\"e1\"");
	assert_string_equal(r.meta_mtime, "1234.5");
	/* a body from a reader */
	struct sm_mem_reader m;
	sm_mem_reader_init(&m, "streamed body", 13);
	resp.len = 0;
	struct sm_http_req r2 = {
		.method = "POST", .url = u, .reader = &m.base, .reader_len = 13, .resp = &resp
	};
	assert_int_equal(sm_http_do(h, &r2, &d), SM_OK);
	assert_int_equal(resp.len, 13);
	/* a reader shorter than announced never sends a short body */
	sm_mem_reader_init(&m, "short", 5);
	struct sm_http_req r3 = {
		.method = "PUT", .url = u, .reader = &m.base, .reader_len = 10, .resp = &resp
	};
	assert_int_equal(sm_http_do(h, &r3, &d), SM_ECHANGED);
	/* status codes are replies, not transport errors */
	url(u, sizeof(u), "/status/503");
	resp.len = 0;
	struct sm_http_req r4 = { .method = "GET", .url = u, .resp = &resp };
	assert_int_equal(sm_http_do(h, &r4, &d), SM_OK);
	assert_int_equal(r4.status, 503);
	assert_non_null(strstr(resp.p, "<Code>Test</Code>"));
	/* HEAD: headers only */
	url(u, sizeof(u), "/big/1000");
	struct sm_http_req r5 = { .method = "HEAD", .url = u };
	assert_int_equal(sm_http_do(h, &r5, &d), SM_OK);
	assert_true(r5.has_content_length);
	assert_int_equal(r5.content_length, 1000);
	/* the response cap */
	struct sm_buf capped = { .limit = 100 };
	struct sm_http_req r6 = { .method = "GET", .url = u, .resp = &capped };
	assert_int_equal(sm_http_do(h, &r6, &d), SM_EIO);
	assert_non_null(strstr(d.msg, "larger than"));
	sm_buf_release(&capped);
	sm_buf_release(&resp);
	sm_http_free(h);
}

static void test_keepalive_and_failures(void **state)
{
	(void)state;
	struct sm_http_cfg cfg = { .connect_timeout_ms = 2000 };
	struct sm_http *h = NULL;
	struct sm_diag d;
	assert_int_equal(sm_http_new(&cfg, &h, &d), SM_OK);
	char u[128];
	url(u, sizeof(u), "/conn");
	long last = 0;
	for (int i = 0; i < 3; i++) {
		struct sm_buf resp = { 0 };
		struct sm_http_req r = { .method = "GET", .url = u, .resp = &resp };
		assert_int_equal(sm_http_do(h, &r, &d), SM_OK);
		sm_buf_append(&resp, "", 0);
		last = strtol(resp.p, NULL, 10);
		sm_buf_release(&resp);
	}
	assert_int_equal(last, 3); /* one connection served all three */
	url(u, sizeof(u), "/reset");
	struct sm_http_req r = { .method = "GET", .url = u };
	assert_int_equal(sm_http_do(h, &r, &d), SM_EAGAIN); /* retryable */
	struct sm_http_req r2 = { .method = "GET", .url = "http://127.0.0.1:1/x" };
	/* refused: an endpoint restarting is back soon, so retryable */
	assert_int_equal(sm_http_do(h, &r2, &d), SM_EAGAIN);
	assert_non_null(strstr(d.msg, "127.0.0.1:1"));
	sm_http_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bodies_and_status),
		cmocka_unit_test(test_keepalive_and_failures),
	};
	return cmocka_run_group_tests(tests, peer_start, peer_stop);
}
