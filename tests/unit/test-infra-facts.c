/* Unit tests for lib/probe/infra_facts: /proc/meminfo, nvidia-smi's csv,
 * node_exporter samples from exposition text and from a Prometheus vector,
 * and the facts as metrics and details: unknown stays null, no GPU
 * publishes no GPU metric. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/probe/infra_facts.h"

static char *const two_mounts[] = {"/", "/var/lib/my \"data\""};

START_TEST(test_meminfo)
{
	double t = 0, a = 0;

	ck_assert_int_eq(infra_facts_parse_meminfo("MemTotal:       24683904 kB\n"
	                                           "MemFree:         1000000 kB\n"
	                                           "MemAvailable:   23950000 kB\n",
	                                           &t, &a),
	                 0);
	ck_assert_double_eq(t, 24683904.0 * 1024);
	ck_assert_double_eq(a, 23950000.0 * 1024);
	ck_assert_int_eq(infra_facts_parse_meminfo("MemTotal: 1 kB\n", &t, &a), -EINVAL);
	ck_assert_int_eq(infra_facts_parse_meminfo("MemTotal: x kB\nMemAvailable: 1 kB\n", &t, &a),
	                 -EINVAL);
	/* MemTotalX is another key. */
	ck_assert_int_eq(infra_facts_parse_meminfo("MemTotalX: 1 kB\nMemAvailable: 1 kB\n", &t, &a),
	                 -EINVAL);
}
END_TEST

START_TEST(test_nvidia_smi)
{
	struct infra_facts f;

	infra_facts_init(&f, two_mounts, 2);
	ck_assert_int_eq(f.n_gpus, -1);
	ck_assert_int_eq(infra_facts_parse_nvidia_smi("NVIDIA A100-SXM4-80GB, 81920, 81000\r\n"
	                                              "NVIDIA A100-SXM4-80GB, 81920, 1024\n",
	                                              &f),
	                 0);
	ck_assert_int_eq(f.n_gpus, 2);
	ck_assert_str_eq(f.gpus[0].name, "NVIDIA A100-SXM4-80GB");
	ck_assert_double_eq(f.gpus[0].memory_bytes, 81920.0 * 1048576);
	ck_assert_double_eq(f.gpus[1].free_bytes, 1024.0 * 1048576);
	ck_assert_int_eq(infra_facts_parse_nvidia_smi("", &f), 0);
	ck_assert_int_eq(f.n_gpus, 0);
	ck_assert_int_eq(infra_facts_parse_nvidia_smi("No devices were found\n", &f), -EINVAL);
	ck_assert_int_eq(f.n_gpus, -1);
	ck_assert_ptr_nonnull(strstr(f.gpu_error, "No devices were found"));
	ck_assert_int_eq(infra_facts_parse_nvidia_smi("GPU, [N/A], 5\n", &f), -EINVAL);
}
END_TEST

static const char node_text[] =
        "# HELP node_cpu_seconds_total x\n"
        "# TYPE node_cpu_seconds_total counter\n"
        "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 10\n"
        "node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 10\n"
        "node_cpu_seconds_total{cpu=\"1\",mode=\"idle\"} 10\n"
        "node_cpu_seconds_total{cpu=\"1\",mode=\"idle\"} 10\n" /* counted once */
        "node_cpu_seconds_total{mode=\"idle\",cpu=\"7\"} 1e3\n"
        "node_memory_MemTotal_bytes 1.073741824e+10\n"
        "node_memory_MemAvailable_bytes 5368709120\n"
        "node_filesystem_avail_bytes{device=\"a\",mountpoint=\"/\"} 2147483648\n"
        "node_filesystem_size_bytes{device=\"a\",mountpoint=\"/\"} 4294967296\n"
        "node_filesystem_avail_bytes{mountpoint=\"/var/lib/my \\\"data\\\"\"} 1073741824\n"
        "node_filesystem_avail_bytes{mountpoint=\"/other\"} 1\n"
        "node_load1 3\n";

START_TEST(test_exposition)
{
	struct infra_facts f;
	json_t *m, *d;

	infra_facts_init(&f, two_mounts, 2);
	ck_assert_int_eq(infra_facts_parse_exposition(node_text, strlen(node_text), &f), 0);
	ck_assert_double_eq(f.cpu_cores, 3);
	ck_assert_int_eq(infra_facts_json(&f, &m, &d), 0);
	ck_assert_double_eq(json_number_value(json_object_get(m, "memory_gib")), 10);
	ck_assert_double_eq(json_number_value(json_object_get(m, "memory_available_gib")), 5);
	ck_assert_double_eq(json_number_value(json_object_get(m, "disk_free_gib")), 2);
	ck_assert_double_eq(json_number_value(json_object_get(m, "disk_free_gib_min")), 1);
	ck_assert_double_eq(json_number_value(json_object_get(
	                            json_array_get(json_object_get(d, "mounts"), 0), "total_gib")),
	                    4);
	/* The escaped mount point was matched; its size is unknown. */
	ck_assert(json_is_null(
	        json_object_get(json_array_get(json_object_get(d, "mounts"), 1), "total_gib")));
	/* No GPU: said so, and no GPU metric at all. */
	ck_assert_str_eq(json_string_value(json_object_get(d, "gpu")), "unavailable");
	ck_assert_ptr_null(json_object_get(m, "gpu_memory_gib"));
	ck_assert_ptr_null(json_object_get(m, "gpu_count"));
	json_decref(m);
	json_decref(d);
}
END_TEST

START_TEST(test_unknown_mount_makes_min_null)
{
	static char *const mounts[] = {"/", "/nope"};
	struct infra_facts f;
	json_t *m, *d;

	infra_facts_init(&f, mounts, 2);
	ck_assert_int_eq(infra_facts_parse_exposition(node_text, strlen(node_text), &f), 0);
	ck_assert_int_eq(infra_facts_json(&f, &m, &d), 0);
	ck_assert_double_eq(json_number_value(json_object_get(m, "disk_free_gib")), 2);
	ck_assert(json_is_null(json_object_get(m, "disk_free_gib_min")));
	ck_assert_str_eq(json_string_value(json_object_get(
	                         json_array_get(json_object_get(d, "mounts"), 1), "error")),
	                 "not reported");
	json_decref(m);
	json_decref(d);
}
END_TEST

START_TEST(test_vector_and_gpus)
{
	json_error_t e;
	json_t *data = json_loads(
	        "{\"resultType\": \"vector\", \"result\": ["
	        "{\"metric\": {\"__name__\": \"node_cpu_seconds_total\", \"cpu\": \"0\", \"mode\": "
	        "\"idle\"}, \"value\": [1, \"5\"]},"
	        "{\"metric\": {\"__name__\": \"node_cpu_seconds_total\", \"cpu\": \"1\", \"mode\": "
	        "\"idle\"}, \"value\": [1, \"5\"]},"
	        "{\"metric\": {\"__name__\": \"node_memory_MemTotal_bytes\"}, \"value\": [1, "
	        "\"2147483648\"]}]}",
	        0, &e);
	struct infra_facts f;
	json_t *m, *d;

	ck_assert_ptr_nonnull(data);
	infra_facts_init(&f, two_mounts, 1);
	ck_assert_int_eq(infra_facts_parse_vector(data, &f), 0);
	ck_assert_double_eq(f.cpu_cores, 2);
	ck_assert_double_eq(f.memory_bytes, 2147483648.0);
	ck_assert_int_eq(infra_facts_parse_nvidia_smi("H100, 81559, 40960\nL4, 23034, 23000\n", &f),
	                 0);
	ck_assert_int_eq(infra_facts_json(&f, &m, &d), 0);
	ck_assert(json_is_null(json_object_get(m, "memory_available_gib")));
	ck_assert_int_eq(json_integer_value(json_object_get(m, "gpu_count")), 2);
	/* The smallest GPU, the least free. */
	ck_assert_double_eq_tol(json_number_value(json_object_get(m, "gpu_memory_gib")),
	                        23034 / 1024.0, 1e-12);
	ck_assert_double_eq_tol(json_number_value(json_object_get(m, "gpu_memory_free_gib")),
	                        22460 / 1024.0 + 540 / 1024.0, 1e-12);
	ck_assert_str_eq(json_string_value(json_object_get(
	                         json_array_get(json_object_get(d, "gpu"), 0), "model")),
	                 "H100");
	json_decref(m);
	json_decref(d);
	json_decref(data);
	data = json_loads("{\"resultType\": \"matrix\", \"result\": []}", 0, &e);
	ck_assert_int_eq(infra_facts_parse_vector(data, &f), -EPROTO);
	json_decref(data);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("infra-facts");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_meminfo);
	tcase_add_test(tc, test_nvidia_smi);
	tcase_add_test(tc, test_exposition);
	tcase_add_test(tc, test_unknown_mount_makes_min_null);
	tcase_add_test(tc, test_vector_and_gpus);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
