/* S3 XML replies: ListObjectsV2 pages (namespaced or not, url-encoded keys,
 * continuation, common prefixes of delimiter listings), <Error>, and hostile
 * input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/store/xml.h"

static const char list1[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>bucket</Name><Prefix></Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>"
        "<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
        "<Contents><Key>a+b%2Fc</Key><LastModified>2013-09-17T18:07:53.000Z</LastModified>"
        "<ETag>&quot;599bab3ed2c697f1d26842727561fd94&quot;</ETag><Size>857</Size>"
        "<StorageClass>STANDARD</StorageClass></Contents>"
        "<Contents><Key>caf%C3%A9/x%2By</Key><LastModified>1970-01-01T00:00:01.5Z</LastModified>"
        "<Size>0</Size></Contents>"
        "<Contents><Key>line%0Abreak</Key><LastModified>2020-02-29T23:59:59Z</LastModified>"
        "<Size>18446744073709551</Size></Contents>"
        "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</"
        "NextContinuationToken>"
        "</ListBucketResult>";

static void test_list_page(void **state)
{
	(void)state;
	struct sm_s3_list_page pg;
	struct sm_diag d;
	assert_int_equal(sm_s3_parse_list(list1, strlen(list1), &pg, &d), SM_OK);
	assert_int_equal(pg.n, 3);
	assert_string_equal(pg.objs[0].key, "a b/c");
	assert_int_equal(pg.objs[0].size, 857);
	assert_int_equal(pg.objs[0].mtime_ns, 1379441273LL * 1000000000);
	assert_string_equal(pg.objs[0].etag, "\"599bab3ed2c697f1d26842727561fd94\"");
	assert_string_equal(pg.objs[1].key, "caf\xc3\xa9/x+y");
	assert_int_equal(pg.objs[1].mtime_ns, 1500000000);
	assert_string_equal(pg.objs[2].key, "line\nbreak");
	assert_int_equal(pg.objs[2].size, 18446744073709551ull);
	assert_true(pg.truncated);
	assert_string_equal(pg.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
	sm_s3_list_page_release(&pg);
}

static void test_list_prefixed_namespace_and_prefixes(void **state)
{
	(void)state;
	static const char xml[] =
	        "<s3:ListBucketResult xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	        "<s3:IsTruncated>false</s3:IsTruncated>"
	        "<s3:Contents><s3:Key>k</s3:Key><s3:Size>1</s3:Size>"
	        "<s3:LastModified>2001-01-01T00:00:00Z</s3:LastModified></s3:Contents>"
	        "<s3:CommonPrefixes><s3:Prefix>dir/</s3:Prefix></s3:CommonPrefixes>"
	        "</s3:ListBucketResult>";
	struct sm_s3_list_page pg;
	struct sm_diag d;
	assert_int_equal(sm_s3_parse_list(xml, strlen(xml), &pg, &d), SM_OK);
	assert_int_equal(pg.n, 1);
	assert_string_equal(pg.objs[0].key, "k");
	assert_false(pg.truncated);
	assert_null(pg.next_token);
	assert_int_equal(pg.n_prefixes, 1);
	assert_string_equal(pg.prefixes[0], "dir/");
	sm_s3_list_page_release(&pg);
}

/* A delimiter listing: common prefixes in the order the server sent them
 * (one per <CommonPrefixes> or several in one), url-encoded ones decoded,
 * the echoed <Prefix> and <Delimiter> not taken for one; a page of
 * prefixes only; many prefixes (the array grows). */
static void test_list_common_prefixes(void **state)
{
	(void)state;
	static const char xml[] =
	        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	        "<Name>b</Name><Prefix>p%2F</Prefix><Delimiter>%2F</Delimiter>"
	        "<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
	        "<Contents><Key>p%2Fa-b</Key><Size>3</Size>"
	        "<LastModified>2001-01-01T00:00:00Z</LastModified></Contents>"
	        "<CommonPrefixes><Prefix>p%2Fa%2F</Prefix></CommonPrefixes>"
	        "<CommonPrefixes><Prefix>p%2Fa.b%2F</Prefix><Prefix>p%2Fsp%20ace%2F</Prefix>"
	        "</CommonPrefixes>"
	        "<NextContinuationToken>tok</NextContinuationToken>"
	        "</ListBucketResult>";
	struct sm_s3_list_page pg;
	struct sm_diag d;
	assert_int_equal(sm_s3_parse_list(xml, strlen(xml), &pg, &d), SM_OK);
	assert_int_equal(pg.n, 1);
	assert_string_equal(pg.objs[0].key, "p/a-b");
	assert_int_equal(pg.n_prefixes, 3);
	assert_string_equal(pg.prefixes[0], "p/a/");
	assert_string_equal(pg.prefixes[1], "p/a.b/");
	assert_string_equal(pg.prefixes[2], "p/sp ace/");
	assert_true(pg.truncated);
	assert_string_equal(pg.next_token, "tok");
	sm_s3_list_page_release(&pg);

	/* prefixes only, not url-encoded (a server that ignores encoding-type) */
	static const char only[] = "<ListBucketResult><IsTruncated>false</IsTruncated>"
	                           "<CommonPrefixes><Prefix>a+b%/</Prefix></CommonPrefixes>"
	                           "</ListBucketResult>";
	assert_int_equal(sm_s3_parse_list(only, strlen(only), &pg, &d), SM_OK);
	assert_int_equal(pg.n, 0);
	assert_int_equal(pg.n_prefixes, 1);
	assert_string_equal(pg.prefixes[0], "a+b%/");
	sm_s3_list_page_release(&pg);

	/* a bad escape in a prefix fails the page */
	static const char bad[] = "<ListBucketResult><EncodingType>url</EncodingType>"
	                          "<CommonPrefixes><Prefix>a%zz/</Prefix></CommonPrefixes>"
	                          "</ListBucketResult>";
	assert_int_not_equal(sm_s3_parse_list(bad, strlen(bad), &pg, &d), SM_OK);

	/* 1000 prefixes */
	struct sm_buf b = { 0 };
	assert_int_equal(sm_buf_appendz(&b, "<ListBucketResult>"), SM_OK);
	for (int i = 0; i < 1000; i++) {
		char one[64];
		snprintf(one, sizeof(one),
		         "<CommonPrefixes><Prefix>d%04d/</Prefix></CommonPrefixes>", i);
		assert_int_equal(sm_buf_appendz(&b, one), SM_OK);
	}
	assert_int_equal(sm_buf_appendz(&b, "</ListBucketResult>"), SM_OK);
	assert_int_equal(sm_s3_parse_list(b.p, b.len, &pg, &d), SM_OK);
	assert_int_equal(pg.n_prefixes, 1000);
	assert_string_equal(pg.prefixes[0], "d0000/");
	assert_string_equal(pg.prefixes[999], "d0999/");
	sm_s3_list_page_release(&pg);
	sm_buf_release(&b);
}

static void test_error_reply(void **state)
{
	(void)state;
	static const char xml[] =
	        "<?xml version=\"1.0\" "
	        "encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch</Code>"
	        "<Message>The request signature we calculated does not match</Message>"
	        "<RequestId>4442587FB7D0A2F9</RequestId></Error>";
	struct sm_s3_error e;
	assert_true(sm_s3_parse_error(xml, strlen(xml), &e));
	assert_string_equal(e.code, "SignatureDoesNotMatch");
	assert_string_equal(e.message, "The request signature we calculated does not match");
	assert_false(sm_s3_parse_error("<html>502 Bad Gateway</html>", 28, &e));
	assert_false(sm_s3_parse_error("garbage", 7, &e));
}

static void test_hostile(void **state)
{
	(void)state;
	struct sm_s3_list_page pg;
	struct sm_diag d;
	static const char *const bad[] = {
		"<ListBucketResult><Contents><Key>a</Key>", /* truncated XML */
		"<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>", /* no key */
		"<ListBucketResult><Contents><Key>a%zz</Key></Contents>"
		"<EncodingType>url</EncodingType></ListBucketResult>", /* bad escape */
		"<ListBucketResult><Contents><Key>a%00b</Key></Contents>"
		"<EncodingType>url</EncodingType></ListBucketResult>", /* a NUL byte */
		"<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></"
		"ListBucketResult>",
		"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>", /* no token */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sm_s3_parse_list(bad[i], strlen(bad[i]), &pg, &d) == SM_OK)
			fail_msg("case %zu parsed", i);
	/* nesting and text caps */
	char deep[2048] = "";
	for (int i = 0; i < 40; i++)
		strcat(deep, "<a>");
	assert_int_not_equal(sm_s3_parse_list(deep, strlen(deep), &pg, &d), SM_OK);
	assert_non_null(strstr(d.msg, "deep"));
	size_t n = (SM_XML_MAX_TEXT + 100);
	char *big = malloc(n + 100);
	strcpy(big, "<ListBucketResult><Contents><Key>");
	size_t off = strlen(big);
	memset(big + off, 'k', n);
	strcpy(big + off + n, "</Key></Contents></ListBucketResult>");
	assert_int_not_equal(sm_s3_parse_list(big, strlen(big), &pg, &d), SM_OK);
	free(big);
}

struct del_seen {
	char keys[4][64];
	char codes[4][128];
	int n;
	const char *refuse; /* a key the callback says was not asked for */
};

static bool del_cb(void *arg, const char *key, const struct sm_s3_error *e)
{
	struct del_seen *ds = arg;
	if (ds->refuse && strcmp(key, ds->refuse) == 0)
		return false;
	assert_true(ds->n < 4);
	snprintf(ds->keys[ds->n], sizeof(ds->keys[0]), "%s", key);
	snprintf(ds->codes[ds->n], sizeof(ds->codes[0]), "%s", e->code);
	ds->n++;
	return true;
}

static void test_delete_result(void **state)
{
	(void)state;
	static const char reply[] =
	        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
	        "<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	        "<Deleted><Key>gone</Key></Deleted>"
	        "<Error><Key>a&amp;b&lt;c</Key><Code>AccessDenied</Code><Message>no</Message></"
	        "Error>"
	        "<Error><Code>InternalError</Code><Key>cr&#13;x</Key></Error>"
	        "</DeleteResult>";
	struct del_seen ds = { 0 };
	struct sm_diag d;
	assert_int_equal(sm_s3_parse_delete(reply, strlen(reply), del_cb, &ds, &d), SM_OK);
	assert_int_equal(ds.n, 2);
	assert_string_equal(ds.keys[0], "a&b<c");
	assert_string_equal(ds.codes[0], "AccessDenied");
	assert_string_equal(ds.keys[1], "cr\rx"); /* the Code came before the Key */
	assert_string_equal(ds.codes[1], "InternalError");
	/* an empty result: nothing failed */
	ds = (struct del_seen){ 0 };
	const char empty[] = "<DeleteResult/>";
	assert_int_equal(sm_s3_parse_delete(empty, strlen(empty), del_cb, &ds, &d), SM_OK);
	assert_int_equal(ds.n, 0);
	/* a key not asked for fails the reply; so does broken XML */
	ds = (struct del_seen){ .refuse = "a&b<c" };
	assert_int_not_equal(sm_s3_parse_delete(reply, strlen(reply), del_cb, &ds, &d), SM_OK);
	const char broken[] = "<DeleteResult><Error><Key>x</Key>";
	assert_int_not_equal(sm_s3_parse_delete(broken, strlen(broken), del_cb, &ds, &d), SM_OK);
	/* a 200 that is not a DeleteResult (a proxy's page, an <Error>) deleted nothing */
	const char other[] = "<Error><Code>InternalError</Code></Error>";
	assert_int_not_equal(sm_s3_parse_delete(other, strlen(other), del_cb, &ds, &d), SM_OK);
}

static void test_xml_escape(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "plain/key.txt", "plain/key.txt" },
		{ "a&b<c>d\"e'f", "a&amp;b&lt;c&gt;d&quot;e&apos;f" },
		{ "tab\tnl\ncr\r", "tab&#9;nl&#10;cr&#13;" },
		{ "\xc3\xbc \xe2\x9c\x93", "\xc3\xbc \xe2\x9c\x93" }, /* UTF-8 as it is */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sm_buf b = { 0 };
		assert_int_equal(sm_xml_escape(&b, cases[i].in), SM_OK);
		assert_int_equal(sm_buf_append(&b, "", 0), SM_OK);
		assert_non_null(b.p);
		b.p[b.len] = '\0';
		assert_string_equal(b.p, cases[i].out);
		sm_buf_release(&b);
	}
	struct sm_buf b = { 0 };
	assert_int_equal(sm_xml_escape(&b, "ctl\x01x"), SM_EINVAL);
	sm_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_page),
		cmocka_unit_test(test_list_prefixed_namespace_and_prefixes),
		cmocka_unit_test(test_list_common_prefixes),
		cmocka_unit_test(test_error_reply),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_delete_result),
		cmocka_unit_test(test_xml_escape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
