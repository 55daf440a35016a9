/* SigV4 against published vectors: AWS's Signature Version 4 test suite
 * (get-vanilla, get-vanilla-query-order-key-case, post-vanilla) and the
 * worked examples of the S3 API reference ("Signature Calculations for the
 * Authorization Header": GET Object, PUT Object, GET Bucket lifecycle, GET
 * Bucket list). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/store/sigv4.h"

struct vector {
	const char *name;
	int suite; /* 0 = test suite credentials, 1 = S3 documentation credentials */
	const char *method;
	const char *uri;
	struct sm_kv query[4];
	size_t n_query;
	struct sm_kv headers[8];
	size_t n_headers;
	const char *payload_hash;
	const char *want_auth;      /* full header, or NULL */
	const char *want_signature; /* hex */
	const char *want_creq_hash; /* or NULL */
};

#define PUT_HASH "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"

static const struct vector vectors[] = {
	{ "get-vanilla",
	  0,
	  "GET",
	  "/",
	  { { 0 } },
	  0,
	  { { "Host", "example.amazonaws.com" }, { "X-Amz-Date", "20150830T123600Z" } },
	  2,
	  SM_SIGV4_EMPTY_SHA256,
	  "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
	  "SignedHeaders=host;x-amz-date, "
	  "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
	  "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
	  "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63" },
	{ "get-vanilla-query-order-key-case",
	  0,
	  "GET",
	  "/",
	  { { "Param2", "value2" }, { "Param1", "value1" } },
	  2,
	  { { "Host", "example.amazonaws.com" }, { "X-Amz-Date", "20150830T123600Z" } },
	  2,
	  SM_SIGV4_EMPTY_SHA256,
	  NULL,
	  "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
	  NULL },
	{ "post-vanilla",
	  0,
	  "POST",
	  "/",
	  { { 0 } },
	  0,
	  { { "Host", "example.amazonaws.com" }, { "X-Amz-Date", "20150830T123600Z" } },
	  2,
	  SM_SIGV4_EMPTY_SHA256,
	  NULL,
	  "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
	  NULL },
	{ "s3 GET Object",
	  1,
	  "GET",
	  "/test.txt",
	  { { 0 } },
	  0,
	  { { "Host", "examplebucket.s3.amazonaws.com" },
	    { "Range", "bytes=0-9" },
	    { "x-amz-content-sha256", SM_SIGV4_EMPTY_SHA256 },
	    { "x-amz-date", "20130524T000000Z" } },
	  4,
	  SM_SIGV4_EMPTY_SHA256,
	  "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
	  "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
	  "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
	  "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
	  "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972" },
	{ "s3 PUT Object",
	  1,
	  "PUT",
	  NULL /* encoded from "/test$file.text" */,
	  { { 0 } },
	  0,
	  { { "Date", "Fri, 24 May 2013 00:00:00 GMT" },
	    { "Host", "examplebucket.s3.amazonaws.com" },
	    { "x-amz-date", "20130524T000000Z" },
	    { "x-amz-storage-class", "REDUCED_REDUNDANCY" },
	    { "x-amz-content-sha256", PUT_HASH } },
	  5,
	  PUT_HASH,
	  NULL,
	  "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
	  NULL },
	{ "s3 GET Bucket lifecycle",
	  1,
	  "GET",
	  "/",
	  { { "lifecycle", "" } },
	  1,
	  { { "Host", "examplebucket.s3.amazonaws.com" },
	    { "x-amz-content-sha256", SM_SIGV4_EMPTY_SHA256 },
	    { "x-amz-date", "20130524T000000Z" } },
	  3,
	  SM_SIGV4_EMPTY_SHA256,
	  NULL,
	  "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
	  NULL },
	{ "s3 GET Bucket (list)",
	  1,
	  "GET",
	  "/",
	  { { "prefix", "J" }, { "max-keys", "2" } },
	  2,
	  { { "Host", "examplebucket.s3.amazonaws.com" },
	    { "x-amz-content-sha256", SM_SIGV4_EMPTY_SHA256 },
	    { "x-amz-date", "20130524T000000Z" } },
	  3,
	  SM_SIGV4_EMPTY_SHA256,
	  NULL,
	  "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
	  NULL },
};

static void test_vectors(void **state)
{
	(void)state;
	static const struct sm_sigv4_cred creds[] = {
		{ "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1",
		  "service" },
		{ "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1",
		  "s3" },
	};
	char payload[65];
	sm_sha256_hex("Welcome to Amazon S3.", 21, payload);
	assert_string_equal(payload, PUT_HASH);
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *v = &vectors[i];
		struct sm_buf uri = { 0 };
		if (v->uri)
			sm_buf_appendz(&uri, v->uri);
		else
			sm_sigv4_encode(&uri, "/test$file.text", true);
		const char *date = v->suite == 0 ? "20150830T123600Z" : "20130524T000000Z";
		struct sm_sigv4_req r = { .method = v->method,
			                  .uri = uri.p,
			                  .query = v->query,
			                  .n_query = v->n_query,
			                  .headers = v->headers,
			                  .n_headers = v->n_headers,
			                  .payload_hash = v->payload_hash,
			                  .amz_date = date };
		struct sm_buf auth = { 0 };
		struct sm_diag d;
		char creq[65];
		assert_int_equal(sm_sigv4_sign(&creds[v->suite], &r, &auth, creq, &d), SM_OK);
		if (v->want_creq_hash && strcmp(creq, v->want_creq_hash) != 0)
			fail_msg("%s: canonical request hash %s, want %s", v->name, creq,
			         v->want_creq_hash);
		const char *sig = strstr(auth.p, "Signature=");
		assert_non_null(sig);
		if (strcmp(sig + 10, v->want_signature) != 0)
			fail_msg("%s: signature %s, want %s", v->name, sig + 10, v->want_signature);
		if (v->want_auth)
			assert_string_equal(auth.p, v->want_auth);
		sm_buf_release(&auth);
		sm_buf_release(&uri);
	}
}

static void test_encoding(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		bool slash;
		const char *want;
	} cases[] = {
		{ "/a b+c%~d/caf\xc3\xa9", true, "/a%20b%2Bc%25~d/caf%C3%A9" },
		{ "a//b/", true, "a//b/" }, /* S3 keeps empty segments */
		{ "a/b", false, "a%2Fb" },
		{ "A-Z_a.z~0", false, "A-Z_a.z~0" },
		{ "=&?*", false, "%3D%26%3F%2A" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sm_buf b = { 0 };
		assert_int_equal(sm_sigv4_encode(&b, cases[i].in, cases[i].slash), SM_OK);
		sm_buf_append(&b, "", 0);
		assert_string_equal(b.p, cases[i].want);
		sm_buf_release(&b);
	}
	char date[17];
	sm_sigv4_date(1440938160, date);
	assert_string_equal(date, "20150830T123600Z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_encoding),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
