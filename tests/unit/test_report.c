/*
 * The --json report's string escaper (control characters, quotes, invalid
 * UTF-8), the report's fields when the run had no dispatch, --metrics
 * addresses, and the exposition text with counters that never go down.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../manager/metrics.h"
#include "../../manager/report.h"

struct esc_case {
	const char *in;
	size_t len; /* 0: strlen(in) */
	const char *out;
	bool lossy;
};

#define FFFD "\xef\xbf\xbd"

static const struct esc_case esc_cases[] = {
	{ "", 0, "\"\"", false },
	{ "plain/key.txt", 0, "\"plain/key.txt\"", false },
	{ "say \"hi\"", 0, "\"say \\\"hi\\\"\"", false },
	{ "back\\slash", 0, "\"back\\\\slash\"", false },
	{ "a/b", 0, "\"a/b\"", false }, /* '/' needs no escape */
	{ "\n\r\t\b\f", 0, "\"\\n\\r\\t\\b\\f\"", false },
	{ "\x01\x1f\x7f", 0, "\"\\u0001\\u001f\\u007f\"", false },
	{ "a\0b", 3, "\"a\\u0000b\"", false },
	{ "line\nbreak", 0, "\"line\\nbreak\"", false },
	/* valid UTF-8 of every length passes as it is */
	{ "caf\xc3\xa9", 0, "\"caf\xc3\xa9\"", false },
	{ "\xe2\x82\xac 5", 0, "\"\xe2\x82\xac 5\"", false },
	{ "\xf0\x9f\x98\x80", 0, "\"\xf0\x9f\x98\x80\"", false },
	{ "\xf4\x8f\xbf\xbf", 0, "\"\xf4\x8f\xbf\xbf\"", false }, /* U+10FFFF */
	{ "\xe2\x80\xa8", 0, "\"\xe2\x80\xa8\"", false },         /* U+2028 is valid JSON */
	{ "\xed\x9f\xbf", 0, "\"\xed\x9f\xbf\"", false },         /* U+D7FF */
	{ "\xee\x80\x80", 0, "\"\xee\x80\x80\"", false },         /* U+E000 */
	/* each byte outside valid UTF-8 becomes U+FFFD */
	{ "\xff", 0, "\"" FFFD "\"", true },
	{ "inv\xff\xfex", 0, "\"inv" FFFD FFFD "x\"", true },
	{ "\x80", 0, "\"" FFFD "\"", true },                   /* a lone continuation */
	{ "\xc0\xaf", 0, "\"" FFFD FFFD "\"", true },          /* overlong '/' */
	{ "\xc1\xbf", 0, "\"" FFFD FFFD "\"", true },          /* overlong */
	{ "\xe0\x80\xaf", 0, "\"" FFFD FFFD FFFD "\"", true }, /* overlong, 3 bytes */
	{ "\xed\xa0\x80", 0, "\"" FFFD FFFD FFFD "\"", true }, /* a surrogate */
	{ "\xf0\x80\x80\xaf", 0, "\"" FFFD FFFD FFFD FFFD "\"", true },
	{ "\xf4\x90\x80\x80", 0, "\"" FFFD FFFD FFFD FFFD "\"", true }, /* above U+10FFFF */
	{ "\xf5\x80\x80\x80", 0, "\"" FFFD FFFD FFFD FFFD "\"", true },
	{ "\xe2\x82", 0, "\"" FFFD FFFD "\"", true },   /* cut short at the end */
	{ "\xe2\x82x", 0, "\"" FFFD FFFD "x\"", true }, /* cut short by ASCII */
	{ "\xc3\"", 0, "\"" FFFD "\\\"\"", true },
	{ "\xc3\n", 0, "\"" FFFD "\\n\"", true },
	{ "ok\xc3\xa9\xff\xc3\xa9", 0, "\"ok\xc3\xa9" FFFD "\xc3\xa9\"", true },
};

static void test_json_string(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(esc_cases) / sizeof(esc_cases[0]); i++) {
		const struct esc_case *c = &esc_cases[i];
		struct sm_buf b = { 0 };
		bool lossy = !c->lossy;
		size_t len = c->len ? c->len : strlen(c->in);
		assert_int_equal(sm_json_string(&b, c->in, len, &lossy), SM_OK);
		if (strcmp(b.p, c->out) != 0 || lossy != c->lossy)
			fail_msg("case %zu: got %s (lossy %d), expected %s (lossy %d)", i, b.p,
			         lossy, c->out, c->lossy);
		sm_buf_release(&b);
	}
}

static void test_json_string_cap(void **state)
{
	(void)state;
	struct sm_buf b = { .limit = 8 };
	assert_int_equal(sm_json_string(&b, "0123456789", 10, NULL), SM_ENOMEM);
	sm_buf_release(&b);
}

static void test_report_without_dispatch(void **state)
{
	(void)state;
	struct sm_report r = {
		.src = "s3://AKID:****@host/b/",
		.dst = NULL,
		.exit_code = 1,
		.elapsed_s = 2.0,
		.total = { .found = 4, .copied = 2, .copied_bytes = 100, .failed = 2 }
	};
	struct sm_buf b = { 0 };
	assert_int_equal(sm_report_json(&r, &b), SM_OK);
	static const char *const want[] = {
		"{\"version\":1,\"status\":\"failed\",\"exit_code\":1,\"dry_run\":false,",
		"\"src\":\"s3://AKID:****@host/b/\",\"dst\":null,",
		"\"elapsed_seconds\":2.000,\"found\":4,",
		"\"bytes_per_second\":50.000,\"objects_per_second\":2.000,",
		"\"failed_keys\":[],\"failed_keys_truncated\":2,",
		"\"workers\":[{\"name\":\"local\",\"tasks\":0,\"found\":0,",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(b.p, want[i]))
			fail_msg("'%s' not in %s", want[i], b.p);
	assert_int_equal(b.p[b.len - 1], '}');
	sm_buf_release(&b);
	r.interrupted = true;
	assert_int_equal(sm_report_json(&r, &b), SM_OK);
	assert_non_null(strstr(b.p, "\"status\":\"interrupted\""));
	sm_buf_release(&b);
}

static void test_metrics_url(void **state)
{
	(void)state;
	static const char *const good[][2] = {
		{ ":9100", "http://127.0.0.1:9100" },
		{ "127.0.0.1:9100", "http://127.0.0.1:9100" },
		{ "0.0.0.0:1", "http://0.0.0.0:1" },
		{ "localhost:65535", "http://localhost:65535" },
		{ "metrics-host.example_1:80", "http://metrics-host.example_1:80" },
		{ "[::1]:9100", "http://[::1]:9100" },
		{ "[fe80::1%eth0]:9100", NULL }, /* no zone ids */
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char url[300];
		struct sm_diag d;
		enum sm_err err = sm_metrics_url(good[i][0], url, sizeof(url), &d);
		if (!good[i][1]) {
			assert_int_equal(err, SM_EINVAL);
			continue;
		}
		if (err != SM_OK)
			fail_msg("'%s': %s", good[i][0], d.msg);
		assert_string_equal(url, good[i][1]);
	}
	static const char *const bad[] = {
		"",        "9100",   ":",      ":0",          ":65536",        ":-1",
		":+80",    ":80x",   "host:",  "::1:9100",    "[::1]9100",     "[]:80",
		"[::1:80", "a b:80", "a/b:80", "http://h:80", "h:99999999999",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char url[300];
		struct sm_diag d;
		if (sm_metrics_url(bad[i], url, sizeof(url), &d) != SM_EINVAL)
			fail_msg("'%s' should be refused", bad[i]);
		char quoted[64];
		snprintf(quoted, sizeof(quoted), "'%s'", bad[i]);
		assert_non_null(strstr(d.msg, quoted));
	}
}

/* A port nothing listens on just now. */
static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t n = sizeof(a);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &n), 0);
	close(s);
	return ntohs(a.sin_port);
}

static void test_metrics_render_holds_counters(void **state)
{
	(void)state;
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", free_port());
	struct sm_metrics *m = NULL;
	struct sm_diag d;
	if (sm_metrics_start(addr, &m, &d) != SM_OK)
		fail_msg("%s", d.msg);
	/* a port another socket holds: SM_EIO, the address named */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s, 1), 0);
	socklen_t alen = sizeof(a);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &alen), 0);
	char busy[64];
	snprintf(busy, sizeof(busy), "127.0.0.1:%d", ntohs(a.sin_port));
	struct sm_metrics *m2 = NULL;
	assert_int_equal(sm_metrics_start(busy, &m2, &d), SM_EIO);
	assert_null(m2);
	char quoted[128];
	snprintf(quoted, sizeof(quoted), "--metrics '%s': cannot listen", busy);
	assert_non_null(strstr(d.msg, quoted));
	close(s);

	struct sm_dispatch_worker w[2] = {
		{ .name = "local",
		  .stats = { .found = 10, .copied = 3, .copied_bytes = 900 },
		  .transfers = 2,
		  .tasks_in_flight = 1 },
		{ .name = "we\"ird\\", .stats = { .copied = 1, .failed = 1 } },
	};
	struct sm_buf b = { 0 };
	assert_int_equal(sm_metrics_render(m, w, 2, 5, &b), SM_OK);
	static const char *const want[] = {
		"# HELP syncmgr_scanned_objects_total ",
		"# TYPE syncmgr_scanned_objects_total counter\n",
		"syncmgr_scanned_objects_total{worker=\"local\"} 10\n",
		"syncmgr_copied_bytes_total{worker=\"local\"} 900\n",
		"syncmgr_copied_objects_total{worker=\"we\\\"ird\\\\\"} 1\n",
		"syncmgr_failed_objects_total{worker=\"we\\\"ird\\\\\"} 1\n",
		"# TYPE syncmgr_pending_objects gauge\nsyncmgr_pending_objects 5\n",
		"# TYPE syncmgr_transfers_in_flight gauge\n",
		"syncmgr_transfers_in_flight{worker=\"local\"} 2\n",
		"syncmgr_tasks_in_flight{worker=\"local\"} 1\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(b.p, want[i]))
			fail_msg("'%s' not in\n%s", want[i], b.p);
	sm_buf_release(&b);

	/* a failed copy took its bytes back, a task went back to the queue:
	 * counters stay where they were, gauges follow */
	w[0].stats.copied_bytes = 400;
	w[0].stats.copied = 2;
	w[0].transfers = 0;
	assert_int_equal(sm_metrics_render(m, w, 2, 4, &b), SM_OK);
	assert_non_null(strstr(b.p, "syncmgr_copied_bytes_total{worker=\"local\"} 900\n"));
	assert_non_null(strstr(b.p, "syncmgr_copied_objects_total{worker=\"local\"} 3\n"));
	assert_non_null(strstr(b.p, "syncmgr_transfers_in_flight{worker=\"local\"} 0\n"));
	assert_non_null(strstr(b.p, "syncmgr_pending_objects 4\n"));
	sm_buf_release(&b);
	w[0].stats.copied_bytes = 1000;
	assert_int_equal(sm_metrics_render(m, w, 2, 0, &b), SM_OK);
	assert_non_null(strstr(b.p, "syncmgr_copied_bytes_total{worker=\"local\"} 1000\n"));
	sm_buf_release(&b);
	sm_metrics_stop(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_string),
		cmocka_unit_test(test_json_string_cap),
		cmocka_unit_test(test_report_without_dispatch),
		cmocka_unit_test(test_metrics_url),
		cmocka_unit_test(test_metrics_render_holds_counters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
