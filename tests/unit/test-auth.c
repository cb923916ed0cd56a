/* test-auth: bearer tokens, roles and the per-token rate limit of
 * api/auth.c, and the service scopes of lib/policy/scope.c. Time is passed in, so the bucket is
 * tested without a clock. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "auth.h"
#include "lib/policy/scope.h"

/* sha256("viewer-t"), ("submit-t"), ("admin-t"), ("notify-t") made by
 * auth_hash_hex in the fixture; checked against a known vector first. */
#define N_TOKENS 4
static struct auth_token tokens[N_TOKENS];

static void setup(void)
{
	static const struct {
		const char *name, *token;
		enum api_role role;
	} t[] = {
	        {"v", "viewer-t", API_ROLE_VIEWER},
	        {"s", "submit-t", API_ROLE_SUBMITTER},
	        {"a", "admin-t", API_ROLE_ADMIN},
	        {"n", "notify-t", API_ROLE_NOTIFIER},
	};
	char hex[65];

	for (size_t i = 0; i < N_TOKENS; i++) {
		ck_assert_int_eq(auth_hash_hex(t[i].token, strlen(t[i].token), hex), 0);
		snprintf(tokens[i].name, sizeof(tokens[i].name), "%s", t[i].name);
		ck_assert_int_eq(auth_parse_hash(hex, tokens[i].hash), 0);
		tokens[i].role = t[i].role;
	}
}

START_TEST(test_hash_vector)
{
	char hex[65];

	ck_assert_int_eq(auth_hash_hex("abc", 3, hex), 0);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	ck_assert_int_eq(auth_parse_hash("zz", tokens[0].hash), -EINVAL);
	ck_assert_int_eq(
	        auth_parse_hash("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f2"
	                        "0015ag",
	                        tokens[0].hash),
	        -EINVAL);
}
END_TEST

static const struct {
	const char *header;
	enum api_role need;
	int want;
	const char *name;
} cases[] = {
        {NULL, API_ROLE_ANYONE, 0, NULL},
        {NULL, API_ROLE_VIEWER, -EACCES, NULL},
        {"Bearer nope", API_ROLE_VIEWER, -EACCES, NULL},
        {"Basic dmlld2VyLXQ=", API_ROLE_VIEWER, -EACCES, NULL},
        {"Bearer ", API_ROLE_VIEWER, -EACCES, NULL},
        {"Bearer viewer-t", API_ROLE_VIEWER, 0, "v"},
        {"bearer viewer-t", API_ROLE_VIEWER, 0, "v"},
        {"Bearer viewer-t", API_ROLE_SUBMITTER, -EPERM, NULL},
        {"Bearer submit-t", API_ROLE_SUBMITTER, 0, "s"},
        {"Bearer submit-t", API_ROLE_ADMIN, -EPERM, NULL},
        {"Bearer admin-t", API_ROLE_ADMIN, 0, "a"},
        {"Bearer admin-t", API_ROLE_VIEWER, 0, "a"},
        {"Bearer admin-tx", API_ROLE_VIEWER, -EACCES, NULL},
        /* notifier stands apart: it delivers notifications and nothing
         * else, and only admin delivers them besides it. */
        {"Bearer notify-t", API_ROLE_NOTIFIER, 0, "n"},
        {"Bearer notify-t", API_ROLE_VIEWER, -EPERM, NULL},
        {"Bearer notify-t", API_ROLE_ADMIN, -EPERM, NULL},
        {"Bearer notify-t", API_ROLE_ANYONE, 0, NULL},
        {"Bearer viewer-t", API_ROLE_NOTIFIER, -EPERM, NULL},
        {"Bearer submit-t", API_ROLE_NOTIFIER, -EPERM, NULL},
        {"Bearer admin-t", API_ROLE_NOTIFIER, 0, "a"},
        {NULL, API_ROLE_NOTIFIER, -EACCES, NULL},
};

START_TEST(test_matrix)
{
	struct auth_config cfg = {.tokens = tokens, .n_tokens = N_TOKENS};
	struct auth *a;
	struct auth_who who = {"unset", ""};
	int retry = 0, r;

	ck_assert_int_eq(auth_new(&cfg, &a), 0);
	ck_assert(auth_enabled(a));
	r = auth_check(a, cases[_i].header, cases[_i].need, 0, &who, &retry);
	ck_assert_int_eq(r, cases[_i].want);
	if (r == 0 && cases[_i].name)
		ck_assert_str_eq(who.name, cases[_i].name);
	else if (r == 0)
		ck_assert_ptr_null(who.name);
	auth_free(a);
}
END_TEST

START_TEST(test_no_tokens_lets_everyone_in)
{
	struct auth_config cfg = {0};
	struct auth *a;
	struct auth_who who = {"unset", ""};
	int retry = 0;

	ck_assert_int_eq(auth_new(&cfg, &a), 0);
	ck_assert(!auth_enabled(a));
	ck_assert_int_eq(auth_check(a, NULL, API_ROLE_ADMIN, 0, &who, &retry), 0);
	ck_assert_ptr_null(who.name);
	ck_assert_int_eq(auth_check(NULL, NULL, API_ROLE_ADMIN, 0, &who, &retry), 0);
	auth_free(a);
}
END_TEST

START_TEST(test_rate_limit)
{
	struct auth_config cfg = {.tokens = tokens, .n_tokens = N_TOKENS, .rate = 2, .burst = 3};
	struct auth *a;
	struct auth_who who;
	int retry = 0;

	ck_assert_int_eq(auth_new(&cfg, &a), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(
		        auth_check(a, "Bearer viewer-t", API_ROLE_VIEWER, 1000, &who, &retry), 0);
	ck_assert_int_eq(auth_check(a, "Bearer viewer-t", API_ROLE_VIEWER, 1000, &who, &retry),
	                 -EAGAIN);
	ck_assert_int_eq(retry, 1);
	/* Another token has its own bucket; anonymous routes are not counted. */
	ck_assert_int_eq(auth_check(a, "Bearer admin-t", API_ROLE_VIEWER, 1000, &who, &retry), 0);
	ck_assert_int_eq(auth_check(a, NULL, API_ROLE_ANYONE, 1000, &who, &retry), 0);
	/* Half a second refills one request at 2/s. */
	ck_assert_int_eq(auth_check(a, "Bearer viewer-t", API_ROLE_VIEWER, 1500, &who, &retry), 0);
	ck_assert_int_eq(auth_check(a, "Bearer viewer-t", API_ROLE_VIEWER, 1500, &who, &retry),
	                 -EAGAIN);
	auth_free(a);
}
END_TEST

START_TEST(test_roles)
{
	enum api_role r;

	ck_assert_int_eq(auth_role_from_string("submitter", &r), 0);
	ck_assert_int_eq(r, API_ROLE_SUBMITTER);
	ck_assert_int_eq(auth_role_from_string("notifier", &r), 0);
	ck_assert_int_eq(r, API_ROLE_NOTIFIER);
	ck_assert_int_eq(auth_role_from_string("anyone", &r), -EINVAL);
	ck_assert_int_eq(auth_role_from_string("root", &r), -EINVAL);
	ck_assert_str_eq(auth_role_to_string(API_ROLE_ADMIN), "admin");
}
END_TEST

static const struct {
	const char *scope, *service;
	bool want;
} scope_cases[] = {
        {NULL, "anything", true},
        {"", "anything", true},
        {"team-a-*", "team-a-api", true},
        {"team-a-*", "team-b-api", false},
        {"team-a-*", "team-a", false},
        {"team-b-*\nteam-a-api", "team-a-api", true},
        {"team-b-*\nteam-a-api", "team-a-apix", false},
        {"svc-?", "svc-1", true},
        {"svc-[0-4]", "svc-7", false},
        {"team-a-*", NULL, false},
};

START_TEST(test_scope)
{
	ck_assert_int_eq(scope_allows(scope_cases[_i].scope, scope_cases[_i].service),
	                 scope_cases[_i].want);
}
END_TEST

static Suite *auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("auth");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_hash_vector);
	tcase_add_loop_test(tc, test_matrix, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, test_no_tokens_lets_everyone_in);
	tcase_add_test(tc, test_rate_limit);
	tcase_add_test(tc, test_roles);
	tcase_add_loop_test(tc, test_scope, 0, sizeof(scope_cases) / sizeof(scope_cases[0]));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(auth_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
