/* Unit tests for the facts the tls probe derives from a handshake
 * (lib/probe/probe_tls.c): the version number of each protocol, days left
 * before notAfter (also once expired), host name match against DNS SANs
 * with a wildcard, IPv4 and IPv6 SANs and the CN fallback, and
 * min_version. The certificates in fixtures/ are self-signed P-256 ones
 * made with `openssl req -x509 -newkey ec -days 3650`: tls-leaf.pem with
 * CN leaf-cn.example.test and SANs DNS:svc.example.test,
 * DNS:*.apps.example.test, IP:127.0.0.1, IP:::1; tls-cn-only.pem with CN
 * legacy.example.test and no SAN. */
#include <check.h>
#include <errno.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/probe/probe_tls.h"

static X509 *load_cert(const char *name)
{
	const char *dir = getenv("READYD_FIXTURES");
	char path[4096];
	FILE *f;
	X509 *cert;

	snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/unit/fixtures", name);
	f = fopen(path, "r");
	ck_assert_msg(f, "%s", path);
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert_msg(cert, "%s is no PEM certificate", path);
	return cert;
}

/* The certificate's notAfter as a time_t. */
static time_t not_after(X509 *cert)
{
	struct tm tm;

	ck_assert_int_eq(ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm), 1);
	return timegm(&tm);
}

START_TEST(test_version_number)
{
	ck_assert_double_eq(probe_tls_version_number(TLS1_VERSION), 1.0);
	ck_assert_double_eq(probe_tls_version_number(TLS1_1_VERSION), 1.1);
	ck_assert_double_eq(probe_tls_version_number(TLS1_2_VERSION), 1.2);
	ck_assert_double_eq(probe_tls_version_number(TLS1_3_VERSION), 1.3);
	ck_assert_double_eq(probe_tls_version_number(SSL3_VERSION), 0);
	ck_assert_double_eq(probe_tls_version_number(0), 0);
}
END_TEST

START_TEST(test_days_left)
{
	X509 *cert = load_cert("tls-leaf.pem");
	time_t end = not_after(cert);
	double days = 99;
	struct tm tm;

	ck_assert_int_eq(probe_tls_days_left(cert, end - 10 * 86400 - 43200, &days), 0);
	ck_assert_double_eq_tol(days, 10.5, 1e-9);
	ck_assert_int_eq(probe_tls_days_left(cert, end - 60, &days), 0);
	ck_assert_double_eq_tol(days, 60.0 / 86400, 1e-9);
	ck_assert_int_eq(probe_tls_days_left(cert, end, &days), 0);
	ck_assert_double_eq_tol(days, 0, 1e-9);
	/* Expired: negative, fractional. */
	ck_assert_int_eq(probe_tls_days_left(cert, end + 2 * 86400 + 21600, &days), 0);
	ck_assert_double_eq_tol(days, -2.25, 1e-9);
	/* Made with -days 3650: ten times 365 days from notBefore. */
	ck_assert_int_eq(ASN1_TIME_to_tm(X509_get0_notBefore(cert), &tm), 1);
	ck_assert_int_eq(probe_tls_days_left(cert, timegm(&tm), &days), 0);
	ck_assert_double_eq_tol(days, 3650, 1e-9);
	X509_free(cert);
}
END_TEST

static const struct {
	const char *cert, *name;
	bool match;
} name_cases[] = {
        {"tls-leaf.pem", "svc.example.test", true},
        {"tls-leaf.pem", "SVC.Example.TEST", true},
        {"tls-leaf.pem", "other.example.test", false},
        {"tls-leaf.pem", "example.test", false},
        /* The wildcard covers exactly one label. */
        {"tls-leaf.pem", "api.apps.example.test", true},
        {"tls-leaf.pem", "apps.example.test", false},
        {"tls-leaf.pem", "a.b.apps.example.test", false},
        /* The CN does not count once there are DNS SANs. */
        {"tls-leaf.pem", "leaf-cn.example.test", false},
        {"tls-leaf.pem", "127.0.0.1", true},
        {"tls-leaf.pem", "127.0.0.2", false},
        {"tls-leaf.pem", "::1", true},
        {"tls-leaf.pem", "0:0:0:0:0:0:0:1", true},
        {"tls-leaf.pem", "::2", false},
        /* A bracketed literal is not an address, nor a name it holds. */
        {"tls-leaf.pem", "[::1]", false},
        {"tls-cn-only.pem", "legacy.example.test", true},
        {"tls-cn-only.pem", "other.example.test", false},
        {"tls-cn-only.pem", "127.0.0.1", false},
};

START_TEST(test_name_matches)
{
	X509 *cert = load_cert(name_cases[_i].cert);

	ck_assert_msg(probe_tls_name_matches(cert, name_cases[_i].name) == name_cases[_i].match,
	              "%s for %s: expected %s", name_cases[_i].cert, name_cases[_i].name,
	              name_cases[_i].match ? "a match" : "no match");
	X509_free(cert);
}
END_TEST

START_TEST(test_version_ok)
{
	ck_assert(probe_tls_version_ok(1.2, NULL));
	ck_assert(probe_tls_version_ok(0, NULL));
	ck_assert(probe_tls_version_ok(1.2, "1.2"));
	ck_assert(probe_tls_version_ok(1.3, "1.2"));
	ck_assert(probe_tls_version_ok(1.3, "1.3"));
	ck_assert(!probe_tls_version_ok(1.2, "1.3"));
	ck_assert(!probe_tls_version_ok(1.1, "1.2"));
	/* An unknown protocol (0) meets no minimum. */
	ck_assert(!probe_tls_version_ok(0, "1.2"));
	ck_assert(probe_tls_version_ok(probe_tls_version_number(TLS1_2_VERSION), "1.2"));
}
END_TEST

static Suite *probe_tls_suite(void)
{
	Suite *s = suite_create("probe-tls");
	TCase *tc = tcase_create("facts");

	tcase_add_test(tc, test_version_number);
	tcase_add_test(tc, test_days_left);
	tcase_add_loop_test(tc, test_name_matches, 0, sizeof(name_cases) / sizeof(name_cases[0]));
	tcase_add_test(tc, test_version_ok);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(probe_tls_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
