#include "taskhost/config/deployment.hpp"

#include <gtest/gtest.h>

#include "support/process.hpp"

using taskhost::config::config_error;
using taskhost::config::load_file;
using taskhost::config::load_string;
namespace fs = std::filesystem;

namespace {

/// The message of the config_error that parsing `yaml` throws, or "" if it parses.
std::string error_of(const std::string& yaml) {
  try {
    load_string(yaml, "/srv/app/deploy.yaml");
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

const std::string minimal = "name: app\nplugins_dir: plugins\n";

}  // namespace

TEST(DeploymentConfigTest, MinimalFileGetsDocumentedDefaults) {
  auto d = load_string(minimal, "/srv/app/deploy.yaml");
  EXPECT_EQ(d.name, "app");
  EXPECT_EQ(d.plugins_dir, fs::path("/srv/app/plugins"));
  EXPECT_EQ(d.state_dir, fs::path("/srv/app/.taskhost"));
  EXPECT_EQ(d.http.host, "127.0.0.1");
  EXPECT_EQ(d.http.port, 8080);
  EXPECT_EQ(d.log.level, "info");
  EXPECT_EQ(d.log.format, "text");
  EXPECT_EQ(d.executor_threads, 0u);
  EXPECT_EQ(d.shutdown_grace_ms, 30000);
  EXPECT_EQ(d.max_payload_bytes, 3u << 20);
  EXPECT_EQ(d.default_retry, taskhost::config::retry_config{});
  EXPECT_EQ(d.default_retry.max_attempts, 3);
  EXPECT_TRUE(d.tasks.empty());
}

TEST(DeploymentConfigTest, FullFileIsReadKeyByKey) {
  auto d = load_string(R"(name: prod
plugins_dir: /opt/plugins
state_dir: ../state
http:
  listen: "[::1]:9090"
  max_body_bytes: 8000000
log: {level: debug, format: json}
executor: {threads: 16}
shutdown: {grace_period_ms: 5000}
limits: {max_payload_bytes: 1000000}
defaults:
  retry: {max_attempts: 5, factor: 1.5, min_timeout_ms: 10, max_timeout_ms: 100, randomize: false}
tasks:
  hello-world:
    retry: {max_attempts: 1}
  other: {}
)", "/srv/app/deploy.yaml");
  EXPECT_EQ(d.plugins_dir, fs::path("/opt/plugins"));
  EXPECT_EQ(d.state_dir, fs::path("/srv/state"));
  EXPECT_EQ(d.http.host, "::1");
  EXPECT_EQ(d.http.port, 9090);
  EXPECT_EQ(d.http.max_body_bytes, 8000000u);
  EXPECT_EQ(d.log.level, "debug");
  EXPECT_EQ(d.log.format, "json");
  EXPECT_EQ(d.executor_threads, 16u);
  EXPECT_EQ(d.shutdown_grace_ms, 5000);
  EXPECT_EQ(d.max_payload_bytes, 1000000u);
  EXPECT_EQ(d.default_retry.max_attempts, 5);
  EXPECT_DOUBLE_EQ(d.default_retry.factor, 1.5);
  EXPECT_FALSE(d.default_retry.randomize);
  // A task override changes only the keys it names; the rest come from defaults.retry.
  const auto& hello = d.retry_for("hello-world");
  EXPECT_EQ(hello.max_attempts, 1);
  EXPECT_DOUBLE_EQ(hello.factor, 1.5);
  EXPECT_EQ(hello.min_timeout_ms, 10);
  EXPECT_EQ(d.retry_for("other"), d.default_retry);
  EXPECT_EQ(d.retry_for("not-configured"), d.default_retry);
  EXPECT_EQ(d.tasks.at("hello-world").position.line, 14);
}

TEST(DeploymentConfigTest, TasksOverridesSeeDefaultsWrittenAfterThem) {
  auto d = load_string(minimal + "tasks:\n  a: {retry: {factor: 3}}\ndefaults:\n  retry: {max_attempts: 7}\n", "/x/d.yaml");
  EXPECT_EQ(d.retry_for("a").max_attempts, 7);
  EXPECT_DOUBLE_EQ(d.retry_for("a").factor, 3);
}

TEST(DeploymentConfigTest, UnknownKeyIsAnErrorWithItsPosition) {
  EXPECT_EQ(error_of(minimal + "htp:\n  listen: 1.2.3.4:80\n").substr(0, 30), "/srv/app/deploy.yaml:3:1: unkn");
  EXPECT_NE(error_of(minimal + "htp: {}\n").find("unknown key 'htp' in the deployment"), std::string::npos);
  EXPECT_NE(error_of(minimal + "http:\n  listn: 1.2.3.4:80\n").find("deploy.yaml:4:3: unknown key 'listn' in http"),
            std::string::npos);
}

TEST(DeploymentConfigTest, WrongTypesAreErrorsWithPosition) {
  EXPECT_NE(error_of(minimal + "executor:\n  threads: many\n").find("deploy.yaml:4:12: executor.threads must be an integer"),
            std::string::npos);
  EXPECT_NE(error_of(minimal + "http: [1, 2]\n").find("deploy.yaml:3:7: http must be a mapping"), std::string::npos);
  EXPECT_NE(error_of(minimal + "defaults: {retry: {randomize: maybe}}\n").find("defaults.retry.randomize must be true or false"),
            std::string::npos);
  EXPECT_NE(error_of("name: [a]\nplugins_dir: p\n").find("deploy.yaml:1:7: name must be a string"), std::string::npos);
}

TEST(DeploymentConfigTest, OutOfRangeValuesAreErrors) {
  EXPECT_NE(error_of(minimal + "defaults: {retry: {max_attempts: 0}}").find("max_attempts must be between 1 and 250"), std::string::npos);
  EXPECT_NE(error_of(minimal + "defaults: {retry: {max_attempts: 251}}").find("max_attempts must be between 1 and 250"), std::string::npos);
  EXPECT_NE(error_of(minimal + "defaults: {retry: {factor: 0.5}}").find("factor must be between 1 and 1000"), std::string::npos);
  EXPECT_NE(error_of(minimal + "defaults: {retry: {min_timeout_ms: -1}}").find("min_timeout_ms must be between 0"), std::string::npos);
  EXPECT_NE(error_of(minimal + "defaults: {retry: {min_timeout_ms: 500, max_timeout_ms: 100}}").find("is below min_timeout_ms"),
            std::string::npos);
  EXPECT_NE(error_of(minimal + "shutdown: {grace_period_ms: -5}").find("grace_period_ms must be between 0"), std::string::npos);
  EXPECT_NE(error_of(minimal + "log: {level: loud}").find("log.level must be one of debug | error | info | trace | warn, got 'loud'"),
            std::string::npos);
  EXPECT_NE(error_of(minimal + "log: {format: xml}").find("log.format must be one of json | text"), std::string::npos);
}

TEST(DeploymentConfigTest, ListenAddressIsChecked) {
  EXPECT_NE(error_of(minimal + "http: {listen: localhost}").find("http.listen must be host:port"), std::string::npos);
  EXPECT_NE(error_of(minimal + "http: {listen: 'a:99999'}").find("invalid port"), std::string::npos);
  EXPECT_NE(error_of(minimal + "http: {listen: ':80'}").find("has no host"), std::string::npos);
  EXPECT_EQ(load_string(minimal + "http: {listen: '0.0.0.0:0'}", "/x/d.yaml").http.port, 0);
}

TEST(DeploymentConfigTest, HttpLimitsHaveDefaultsAndAreChecked) {
  auto d = load_string(minimal, "/x/d.yaml");
  EXPECT_EQ(d.http.header_timeout_ms, 10000);
  EXPECT_EQ(d.http.body_timeout_ms, 30000);
  EXPECT_EQ(d.http.idle_timeout_ms, 60000);
  EXPECT_EQ(d.http.max_connections, 10000u);
  EXPECT_TRUE(d.http.access_log);
  EXPECT_EQ(d.http.busy_poll_us, 200);
  d = load_string(minimal + "http:\n  header_timeout_ms: 500\n  body_timeout_ms: 700\n  idle_timeout_ms: 900\n"
                            "  max_connections: 50\n  access_log: false\n  busy_poll_us: 0\n", "/x/d.yaml");
  EXPECT_EQ(d.http.busy_poll_us, 0);
  EXPECT_EQ(d.http.header_timeout_ms, 500);
  EXPECT_EQ(d.http.body_timeout_ms, 700);
  EXPECT_EQ(d.http.idle_timeout_ms, 900);
  EXPECT_EQ(d.http.max_connections, 50u);
  EXPECT_FALSE(d.http.access_log);
  EXPECT_NE(error_of(minimal + "http:\n  header_timeout_ms: 0\n")
                .find("deploy.yaml:4:22: http.header_timeout_ms must be between 1 and 3600000, got 0"), std::string::npos);
  EXPECT_NE(error_of(minimal + "http: {body_timeout_ms: 3600001}").find("http.body_timeout_ms must be between 1 and 3600000"),
            std::string::npos);
  EXPECT_NE(error_of(minimal + "http: {idle_timeout_ms: -1}").find("http.idle_timeout_ms must be between 1 and 86400000"),
            std::string::npos);
  EXPECT_NE(error_of(minimal + "http: {idle_timeout_ms: 1m}").find("http.idle_timeout_ms must be an integer, got '1m'"),
            std::string::npos);
  EXPECT_NE(error_of(minimal + "http:\n  max_connections: 0\n")
                .find("deploy.yaml:4:20: http.max_connections must be between 1 and 1000000, got 0"), std::string::npos);
  EXPECT_NE(error_of(minimal + "http:\n  access_log: sometimes\n")
                .find("deploy.yaml:4:15: http.access_log must be true or false, got 'sometimes'"), std::string::npos);
  EXPECT_NE(error_of(minimal + "http:\n  busy_poll_us: 10001\n")
                .find("deploy.yaml:4:17: http.busy_poll_us must be between 0 and 10000, got 10001"), std::string::npos);
  EXPECT_NE(error_of(minimal + "http: {busy_poll_us: -5}").find("http.busy_poll_us must be between 0 and 10000, got -5"),
            std::string::npos);
}

TEST(DeploymentConfigTest, ABatchsItemStreamHasItsOwnLargerBodyLimit) {
  auto d = load_string(minimal, "/x/d.yaml");
  EXPECT_EQ(d.http.max_batch_body_bytes, 128u << 20);
  d = load_string(minimal + "http: {max_batch_body_bytes: 50000000}", "/x/d.yaml");
  EXPECT_EQ(d.http.max_batch_body_bytes, 50000000u);
  d = load_string(minimal + "http: {max_body_bytes: 8000000, max_batch_body_bytes: 2000}", "/x/d.yaml");
  EXPECT_EQ(d.http.max_batch_body_bytes, 8000000u) << "never less than max_body_bytes";
  EXPECT_NE(error_of(minimal + "http: {max_batch_body_bytes: 10}").find("http.max_batch_body_bytes must be between 1024"), std::string::npos);
}

TEST(DeploymentConfigTest, RequiredKeysAreNamedWhenMissing) {
  EXPECT_NE(error_of("name: a\n").find("missing required key 'plugins_dir'"), std::string::npos);
  EXPECT_NE(error_of("plugins_dir: p\n").find("missing required key 'name'"), std::string::npos);
  EXPECT_NE(error_of("name: ''\nplugins_dir: p\n").find("name must not be empty"), std::string::npos);
}

TEST(DeploymentConfigTest, SyntaxErrorsPointAtTheirPlace) {
  auto e = error_of("name: a\nplugins_dir: p\nhttp:\n  listen: [unclosed\n");
  EXPECT_EQ(e.rfind("/srv/app/deploy.yaml:", 0), 0u) << e;
  EXPECT_NE(e.find(":5:"), std::string::npos) << e;
}

TEST(DeploymentConfigTest, DuplicateKeysAreErrors) {
  EXPECT_NE(error_of("name: a\nname: b\nplugins_dir: p\n").find("deploy.yaml:2:1: duplicate key 'name'"), std::string::npos);
  EXPECT_NE(error_of(minimal + "tasks:\n  a: {}\n  a: {}\n").find("duplicate task 'a'"), std::string::npos);
}

TEST(DeploymentConfigTest, EmptyOrNonMappingFilesAreErrors) {
  EXPECT_NE(error_of("").find("the file is empty"), std::string::npos);
  EXPECT_NE(error_of("# only a comment\n").find("the file is empty"), std::string::npos);
  EXPECT_NE(error_of("- a\n- b\n").find("must be a mapping"), std::string::npos);
}

TEST(DeploymentConfigTest, MissingFileNamesThePath) {
  try {
    load_file("/nonexistent/deploy.yaml");
    FAIL() << "no error";
  } catch (const config_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/deploy.yaml: cannot read the file"), std::string::npos);
  }
}

TEST(DeploymentConfigTest, TheExampleDeploymentParses) {
  auto d = load_file(fs::path(TASKHOST_SOURCE_DIR) / "config/dev.yaml");
  EXPECT_EQ(d.name, "dev");
  EXPECT_EQ(d.plugins_dir, fs::path(TASKHOST_SOURCE_DIR) / "build/plugins");
  EXPECT_EQ(d.http.port, 8080);
  EXPECT_EQ(d.auth.keys_file, fs::path(TASKHOST_SOURCE_DIR) / ".taskhost/dev.key") << "the key `make run` makes";
}

TEST(DeploymentConfigTest, MaxDurationIsADurationOfAtLeastFiveSeconds) {
  auto d = load_string(minimal + "defaults: {max_duration: 10m}\ntasks:\n  a: {max_duration: 1h30m}\n  b: {}\n", "/x/d.yaml");
  EXPECT_EQ(d.default_max_duration, std::chrono::minutes(10));
  EXPECT_EQ(d.max_duration_for("a"), std::chrono::minutes(90));
  EXPECT_EQ(d.max_duration_for("b"), std::chrono::minutes(10));
  EXPECT_EQ(d.max_duration_for("other"), std::chrono::minutes(10));
  EXPECT_EQ(load_string(minimal, "/x/d.yaml").max_duration_for("a").count(), 0) << "no limit unless configured";
  EXPECT_NE(error_of(minimal + "defaults: {max_duration: 4s}").find("defaults.max_duration must be at least 5s, got '4s'"),
            std::string::npos);
  EXPECT_NE(error_of(minimal + "tasks:\n  a: {max_duration: 5 parsecs}\n").find("deploy.yaml:4:21: tasks.a.max_duration must be a duration"),
            std::string::npos) << error_of(minimal + "tasks:\n  a: {max_duration: 5 parsecs}\n");
  EXPECT_NE(error_of(minimal + "defaults: {max_duration: 300}").find("must be a duration"), std::string::npos);
}

TEST(DeploymentConfigTest, MiddlewareListsKeepOrderAndPositions) {
  auto d = load_string(minimal + "middleware: [db, tracing]\ntasks:\n  a: {middleware: [audit]}\n", "/x/d.yaml");
  ASSERT_EQ(d.middleware.size(), 2u);
  EXPECT_EQ(d.middleware[0].name, "db");
  EXPECT_EQ(d.middleware[1].name, "tracing");
  EXPECT_EQ(d.middleware[1].position.str(), "/x/d.yaml:3:18");
  ASSERT_EQ(d.tasks.at("a").middleware.size(), 1u);
  EXPECT_EQ(d.tasks.at("a").middleware[0].name, "audit");
  EXPECT_NE(error_of(minimal + "middleware: db\n").find("middleware must be a list of middleware names"), std::string::npos);
  EXPECT_NE(error_of(minimal + "middleware: [db, db]\n").find("deploy.yaml:3:18: middleware 'db' is listed twice"), std::string::npos)
      << error_of(minimal + "middleware: [db, db]\n");
  EXPECT_NE(error_of(minimal + "middleware: [[x]]\n").find("middleware entries must be a string"), std::string::npos);
}

TEST(DeploymentConfigTest, StoreDefaultsToRunsDbInTheStateDir) {
  auto d = load_string(minimal, "/srv/app/deploy.yaml");
  EXPECT_EQ(d.store.path, fs::path("/srv/app/.taskhost/runs.db"));
  EXPECT_FALSE(d.store.full_durability);
  EXPECT_EQ(d.store.retention_days, 30);
  EXPECT_EQ(d.max_output_bytes, 10u << 20);
  auto moved = load_string(minimal + "state_dir: /var/lib/th\n", "/srv/app/deploy.yaml");
  EXPECT_EQ(moved.store.path, fs::path("/var/lib/th/runs.db")) << "follows state_dir wherever it is written";
}

TEST(DeploymentConfigTest, StoreKeysAreReadAndChecked) {
  auto d = load_string(minimal + "store: {path: data/r.db, durability: full, retention_days: 0.5}\nlimits: {max_output_bytes: 1000}\n",
                       "/srv/app/deploy.yaml");
  EXPECT_EQ(d.store.path, fs::path("/srv/app/data/r.db"));
  EXPECT_TRUE(d.store.full_durability);
  EXPECT_EQ(d.store.retention_days, 0.5);
  EXPECT_EQ(d.max_output_bytes, 1000u);
  EXPECT_EQ(load_string(minimal + "store: {path: ':memory:'}\n", "/x/d.yaml").store.path, fs::path(":memory:"));

  EXPECT_EQ(error_of(minimal + "store: {durability: sometimes}\n").rfind("/srv/app/deploy.yaml:3:", 0), 0u);
  EXPECT_NE(error_of(minimal + "store: {durability: sometimes}\n").find("store.durability"), std::string::npos);
  EXPECT_NE(error_of(minimal + "store: {retention_days: 0}\n").find("store.retention_days must be a number of days above 0"),
            std::string::npos);
  EXPECT_NE(error_of(minimal + "store: {retention_days: soon}\n").find("store.retention_days must be a number"), std::string::npos);
  EXPECT_NE(error_of(minimal + "store: {path: ''}\n").find("store.path must not be empty"), std::string::npos);
  EXPECT_NE(error_of(minimal + "store: {paht: x}\n").find("paht"), std::string::npos) << "unknown keys are errors";
  EXPECT_NE(error_of(minimal + "limits: {max_output_bytes: 0}\n").find("limits.max_output_bytes"), std::string::npos);
}

TEST(DeploymentConfigTest, WaitsResidentPerTask) {
  EXPECT_EQ(load_string(minimal, "/srv/app/deploy.yaml").resident_waits_per_task, 256u);
  EXPECT_EQ(load_string(minimal + "waits:\n  resident_per_task: 0\n", "/srv/app/deploy.yaml").resident_waits_per_task, 0u);
  EXPECT_NE(error_of(minimal + "waits:\n  resident_per_task: -1\n").find("deploy.yaml:4:22"), std::string::npos)
      << error_of(minimal + "waits:\n  resident_per_task: -1\n");
  EXPECT_NE(error_of(minimal + "waits:\n  resident: 3\n").find("resident"), std::string::npos);
}

TEST(DeploymentConfigTest, PowerCpuLatencyIsOptionalAndChecked) {
  EXPECT_FALSE(load_string(minimal, "/srv/app/deploy.yaml").cpu_latency_us) << "no request unless asked for";
  EXPECT_EQ(load_string(minimal + "power:\n  cpu_latency_us: 0\n", "/srv/app/deploy.yaml").cpu_latency_us, 0);
  EXPECT_EQ(load_string(minimal + "power: {cpu_latency_us: 20}\n", "/srv/app/deploy.yaml").cpu_latency_us, 20);
  EXPECT_NE(error_of(minimal + "power:\n  cpu_latency_us: -1\n").find("deploy.yaml:4:19: power.cpu_latency_us must be between 0 and 1000000, got -1"),
            std::string::npos)
      << error_of(minimal + "power:\n  cpu_latency_us: -1\n");
  EXPECT_NE(error_of(minimal + "power:\n  cpu_latency_us: 1000001\n").find("power.cpu_latency_us must be between 0 and 1000000"),
            std::string::npos);
  EXPECT_NE(error_of(minimal + "power:\n  cpu_latency_us: fast\n").find("deploy.yaml:4:19"), std::string::npos)
      << error_of(minimal + "power:\n  cpu_latency_us: fast\n");
  EXPECT_NE(error_of(minimal + "power:\n  cpu_latency: 0\n").find("cpu_latency"), std::string::npos) << "unknown keys are errors";
}

TEST(DeploymentConfigTest, ExecutorMaxThreadsIsReadAndChecked) {
  auto d = load_string(minimal + "executor:\n  threads: 8\n  max_threads: 64\n", "/x/d.yaml");
  EXPECT_EQ(d.executor_threads, 8u);
  EXPECT_EQ(d.executor_max_threads, 64u);
  EXPECT_EQ(load_string(minimal, "/x/d.yaml").executor_max_threads, 0u) << "automatic unless configured";
  EXPECT_EQ(load_string(minimal + "executor: {threads: 8, max_threads: 0}\n", "/x/d.yaml").executor_max_threads, 0u);
  EXPECT_EQ(load_string(minimal + "executor: {max_threads: 2}\n", "/x/d.yaml").executor_max_threads, 2u)
      << "no lower bound besides 1 when threads is automatic";
  EXPECT_EQ(load_string(minimal + "executor: {threads: 8, max_threads: 8}\n", "/x/d.yaml").executor_max_threads, 8u);
  EXPECT_EQ(load_string(minimal + "executor: {max_threads: 4096}\n", "/x/d.yaml").executor_max_threads, 4096u);
  // Written before threads, still compared with it, and the message points at max_threads.
  auto below = error_of(minimal + "executor:\n  max_threads: 4\n  threads: 8\n");
  EXPECT_EQ(below.rfind("/srv/app/deploy.yaml:4:16: executor.max_threads (4) must not be below executor.threads (8)", 0), 0u)
      << below;
  EXPECT_NE(error_of(minimal + "executor: {max_threads: 4097}\n").find("executor.max_threads must be between 0 and 4096, got 4097"),
            std::string::npos);
  EXPECT_NE(error_of(minimal + "executor: {max_threads: -1}\n").find("executor.max_threads must be between 0 and 4096"),
            std::string::npos);
  EXPECT_NE(error_of(minimal + "executor: {max_threads: lots}\n").find("deploy.yaml:3:25: executor.max_threads must be an integer"),
            std::string::npos);
}

TEST(DeploymentConfigTest, QueuesAreReadInFileOrderWithPositions) {
  auto d = load_string(minimal + R"(queues:
  - name: email
    concurrency_limit: 10
    total_concurrency_limit: 50
    rate_limit: {limit: 100, period: 1m, per_key: false}
  - name: reports.v2_x-Y
    rate_limit: {limit: 5, period: 1h30m, per_key: true}
  - {name: bare}
  - name: zero
    concurrency_limit: 0
    total_concurrency_limit: 100000
    rate_limit:
      limit: 1000000
      period: 1s
)", "/x/d.yaml");
  ASSERT_EQ(d.queues.size(), 4u);
  const auto& email = d.queues[0];
  EXPECT_EQ(email.name, "email");
  EXPECT_EQ(email.concurrency_limit, 10);
  EXPECT_EQ(email.total_concurrency_limit, 50);
  ASSERT_TRUE(email.rate_limit.has_value());
  EXPECT_EQ(*email.rate_limit, (taskhost::config::rate_limit_config{100, std::chrono::minutes(1), false}));
  EXPECT_EQ(email.position.str(), "/x/d.yaml:4:11");

  const auto& reports = d.queues[1];
  EXPECT_EQ(reports.name, "reports.v2_x-Y");
  EXPECT_FALSE(reports.concurrency_limit.has_value()) << "absent = unlimited";
  EXPECT_FALSE(reports.total_concurrency_limit.has_value());
  ASSERT_TRUE(reports.rate_limit.has_value());
  EXPECT_EQ(*reports.rate_limit, (taskhost::config::rate_limit_config{5, std::chrono::minutes(90), true}));

  const auto& bare = d.queues[2];
  EXPECT_EQ(bare.name, "bare");
  EXPECT_FALSE(bare.concurrency_limit.has_value());
  EXPECT_FALSE(bare.total_concurrency_limit.has_value());
  EXPECT_FALSE(bare.rate_limit.has_value());
  EXPECT_EQ(bare.position.str(), "/x/d.yaml:10:12");

  const auto& zero = d.queues[3];
  EXPECT_EQ(zero.concurrency_limit, 0) << "0 is a limit (nothing runs), not 'unlimited'";
  EXPECT_EQ(zero.total_concurrency_limit, 100000);
  ASSERT_TRUE(zero.rate_limit.has_value());
  EXPECT_EQ(zero.rate_limit->limit, 1000000);
  EXPECT_EQ(zero.rate_limit->period, std::chrono::seconds(1));
  EXPECT_FALSE(zero.rate_limit->per_key) << "per_key defaults to false";
}

TEST(DeploymentConfigTest, NoQueuesOrAnEmptyQueuesKeyMeansNone) {
  EXPECT_TRUE(load_string(minimal, "/x/d.yaml").queues.empty());
  EXPECT_TRUE(load_string(minimal + "queues:\n", "/x/d.yaml").queues.empty());
  EXPECT_TRUE(load_string(minimal + "queues: []\n", "/x/d.yaml").queues.empty());
}

TEST(DeploymentConfigTest, QueuesMustBeAListOfMappings) {
  EXPECT_EQ(error_of(minimal + "queues:\n  email: {concurrency_limit: 1}\n").rfind("/srv/app/deploy.yaml:4:3: queues must be a list", 0), 0u)
      << error_of(minimal + "queues:\n  email: {concurrency_limit: 1}\n");
  EXPECT_EQ(error_of(minimal + "queues: email\n").rfind("/srv/app/deploy.yaml:3:9: queues must be a list", 0), 0u);
  auto e = error_of(minimal + "queues:\n  - {name: a}\n  - email\n");
  EXPECT_EQ(e.rfind("/srv/app/deploy.yaml:5:5: queues[1] must be a mapping", 0), 0u) << e;
}

TEST(DeploymentConfigTest, AQueueNeedsAValidName) {
  auto missing = error_of(minimal + "queues:\n  - concurrency_limit: 3\n");
  EXPECT_EQ(missing.rfind("/srv/app/deploy.yaml:4:5: queues[0] is missing required key 'name'", 0), 0u) << missing;

  auto slash = error_of(minimal + "queues:\n  - name: task/send-email\n");
  EXPECT_EQ(slash.rfind("/srv/app/deploy.yaml:4:11: queues[0].name must be 1 to 128 characters of A-Z a-z 0-9 _ . -", 0), 0u)
      << slash;
  EXPECT_NE(slash.find("got 'task/send-email'"), std::string::npos) << "task-owned queue names stay out of reach";
  EXPECT_NE(error_of(minimal + "queues:\n  - name: 'has space'\n").find("queues[0].name must be 1 to 128"), std::string::npos);
  EXPECT_NE(error_of(minimal + "queues:\n  - name: ''\n").find("queues[0].name must be 1 to 128"), std::string::npos);
  EXPECT_NE(error_of(minimal + "queues:\n  - name: émail\n").find("queues[0].name must be 1 to 128"), std::string::npos);
  EXPECT_NE(error_of(minimal + "queues:\n  - name: " + std::string(129, 'q') + "\n").find("queues[0].name must be 1 to 128"),
            std::string::npos);
  EXPECT_EQ(load_string(minimal + "queues:\n  - name: " + std::string(128, 'q') + "\n", "/x/d.yaml").queues.at(0).name.size(), 128u);
  EXPECT_NE(error_of(minimal + "queues:\n  - name: [a]\n").find("queues[0].name must be a string"), std::string::npos);
}

TEST(DeploymentConfigTest, ADuplicateQueueNamePointsAtTheSecondAndNamesTheFirstLine) {
  auto e = error_of(minimal + "queues:\n  - name: a\n  - name: b\n  - {name: a, concurrency_limit: 1}\n");
  EXPECT_EQ(e, "/srv/app/deploy.yaml:6:12: queue 'a' is declared twice (first at line 4)");
}

TEST(DeploymentConfigTest, ConcurrencyLimitsAreIntegersUpToOneHundredThousand) {
  auto high = error_of(minimal + "queues:\n  - name: a\n    concurrency_limit: 100001\n");
  EXPECT_EQ(high, "/srv/app/deploy.yaml:5:24: queues[0].concurrency_limit must be between 0 and 100000, got 100001");
  EXPECT_NE(error_of(minimal + "queues:\n  - {name: a, concurrency_limit: -1}\n").find("queues[0].concurrency_limit must be between 0 and 100000, got -1"),
            std::string::npos);
  EXPECT_NE(error_of(minimal + "queues:\n  - {name: a, concurrency_limit: 2.5}\n").find("queues[0].concurrency_limit must be an integer, got '2.5'"),
            std::string::npos);
  EXPECT_NE(error_of(minimal + "queues:\n  - {name: a, concurrency_limit: [1]}\n").find("queues[0].concurrency_limit must be an integer"),
            std::string::npos);

  auto total = error_of(minimal + "queues:\n  - name: a\n    total_concurrency_limit: 100001\n");
  EXPECT_EQ(total, "/srv/app/deploy.yaml:5:30: queues[0].total_concurrency_limit must be between 0 and 100000, got 100001");
  EXPECT_NE(error_of(minimal + "queues:\n  - {name: a, total_concurrency_limit: -3}\n").find("queues[0].total_concurrency_limit must be between 0 and 100000, got -3"),
            std::string::npos);
  EXPECT_NE(error_of(minimal + "queues:\n  - {name: a, total_concurrency_limit: ten}\n").find("queues[0].total_concurrency_limit must be an integer, got 'ten'"),
            std::string::npos);
}

TEST(DeploymentConfigTest, RateLimitNeedsALimitAndAPeriod) {
  EXPECT_NE(error_of(minimal + "queues:\n  - {name: a, rate_limit: 100}\n").find("deploy.yaml:4:27: queues[0].rate_limit must be a mapping"),
            std::string::npos) << error_of(minimal + "queues:\n  - {name: a, rate_limit: 100}\n");
  auto no_limit = error_of(minimal + "queues:\n  - name: a\n    rate_limit: {period: 1s}\n");
  EXPECT_EQ(no_limit.rfind("/srv/app/deploy.yaml:5:17: queues[0].rate_limit is missing required key 'limit'", 0), 0u) << no_limit;
  auto no_period = error_of(minimal + "queues:\n  - name: a\n    rate_limit: {limit: 5}\n");
  EXPECT_EQ(no_period.rfind("/srv/app/deploy.yaml:5:17: queues[0].rate_limit is missing required key 'period'", 0), 0u) << no_period;
  auto empty = error_of(minimal + "queues:\n  - name: a\n    rate_limit:\n");
  EXPECT_EQ(empty.rfind("/srv/app/deploy.yaml:5:", 0), 0u) << empty;
  EXPECT_NE(empty.find("queues[0].rate_limit is missing required key 'limit'"), std::string::npos) << empty;
}

TEST(DeploymentConfigTest, RateLimitValuesAreChecked) {
  auto zero = error_of(minimal + "queues:\n  - name: a\n    rate_limit: {limit: 0, period: 1s}\n");
  EXPECT_EQ(zero, "/srv/app/deploy.yaml:5:25: queues[0].rate_limit.limit must be between 1 and 1000000, got 0");
  EXPECT_NE(error_of(minimal + "queues:\n  - {name: a, rate_limit: {limit: 1000001, period: 1s}}\n").find("rate_limit.limit must be between 1 and 1000000, got 1000001"),
            std::string::npos);
  EXPECT_NE(error_of(minimal + "queues:\n  - {name: a, rate_limit: {limit: many, period: 1s}}\n").find("rate_limit.limit must be an integer"),
            std::string::npos);

  auto bad = error_of(minimal + "queues:\n  - name: a\n    rate_limit: {limit: 1, period: soon}\n");
  EXPECT_EQ(bad.rfind("/srv/app/deploy.yaml:5:36: queues[0].rate_limit.period must be a duration like \"1s\"", 0), 0u) << bad;
  EXPECT_NE(bad.find("got 'soon'"), std::string::npos) << bad;
  EXPECT_NE(bad.find("units w d hr h m s"), std::string::npos) << bad;
  EXPECT_NE(error_of(minimal + "queues:\n  - {name: a, rate_limit: {limit: 1, period: 60}}\n").find("rate_limit.period must be a duration"),
            std::string::npos) << "a bare number has no unit";
  auto nothing = error_of(minimal + "queues:\n  - name: a\n    rate_limit: {limit: 1, period: 0s}\n");
  EXPECT_EQ(nothing, "/srv/app/deploy.yaml:5:36: queues[0].rate_limit.period must be above 0, got '0s'");
  EXPECT_NE(error_of(minimal + "queues:\n  - {name: a, rate_limit: {limit: 1, period: 0m0s}}\n").find("period must be above 0"),
            std::string::npos);
  EXPECT_NE(error_of(minimal + "queues:\n  - {name: a, rate_limit: {limit: 1, period: 1s, per_key: sometimes}}\n")
                .find("queues[0].rate_limit.per_key must be true or false, got 'sometimes'"),
            std::string::npos);
}

TEST(DeploymentConfigTest, UnknownKeysInQueuesAreErrors) {
  auto entry = error_of(minimal + "queues:\n  - name: a\n    concurrency: 3\n");
  EXPECT_EQ(entry.rfind("/srv/app/deploy.yaml:5:5: unknown key 'concurrency' in queues[0] (known keys: concurrency_limit, name, rate_limit, total_concurrency_limit)", 0), 0u)
      << entry;
  auto rate = error_of(minimal + "queues:\n  - name: a\n    rate_limit: {limit: 1, period: 1s, burst: 2}\n");
  EXPECT_EQ(rate.rfind("/srv/app/deploy.yaml:5:40: unknown key 'burst' in queues[0].rate_limit (known keys: limit, per_key, period)", 0), 0u)
      << rate;
  EXPECT_NE(error_of(minimal + "queues:\n  - {name: a, name: b}\n").find("duplicate key 'name' in queues[0]"), std::string::npos);
}

TEST(DeploymentConfigTest, ATaskNamesItsQueueWithPosition) {
  auto d = load_string(minimal + "tasks:\n  send-email:\n    queue: email\n  other: {}\n", "/x/d.yaml");
  EXPECT_EQ(d.tasks.at("send-email").queue, "email");
  EXPECT_EQ(d.tasks.at("send-email").queue_position.str(), "/x/d.yaml:5:12");
  EXPECT_EQ(d.tasks.at("other").queue, "") << "no queue: the plugin's choice, else the task's own";
  // The queue need not be declared under queues: (a plugin may declare it; the runtime checks).
  EXPECT_EQ(load_string(minimal + "queues: [{name: a}]\ntasks: {t: {queue: b}}\n", "/x/d.yaml").tasks.at("t").queue, "b");

  auto bad = error_of(minimal + "tasks:\n  send-email:\n    queue: task/send-email\n");
  EXPECT_EQ(bad.rfind("/srv/app/deploy.yaml:5:12: tasks.send-email.queue must be 1 to 128 characters of A-Z a-z 0-9 _ . -", 0), 0u)
      << bad;
  EXPECT_NE(error_of(minimal + "tasks: {t: {queue: ''}}\n").find("tasks.t.queue must be 1 to 128"), std::string::npos);
  EXPECT_NE(error_of(minimal + "tasks: {t: {queue: [a]}}\n").find("tasks.t.queue must be a string"), std::string::npos);
}

TEST(DeploymentConfigTest, SchedulesAreReadWithTheirPlaces) {
  auto d = load_string(minimal + R"(schedules:
  - task: daily-report
    cron: "0 9 * * 1-5"
    timezone: Europe/London
  - task: daily-report
    key: evening
    cron: "0 18 * * *"
    external_id: team-a
  - {task: cleanup, cron: "*/5 * * * *"}
)",
                       "/srv/app/deploy.yaml");
  ASSERT_EQ(d.schedules.size(), 3u);
  EXPECT_EQ(d.schedules[0].task, "daily-report");
  EXPECT_EQ(d.schedules[0].cron, "0 9 * * 1-5");
  EXPECT_EQ(d.schedules[0].timezone, "Europe/London");
  EXPECT_EQ(d.schedules[0].key, "daily-report");  // the task id by default
  EXPECT_EQ(d.schedules[0].cron_position.str(), "/srv/app/deploy.yaml:5:11");
  EXPECT_EQ(d.schedules[0].timezone_position.str(), "/srv/app/deploy.yaml:6:15");
  EXPECT_EQ(d.schedules[1].key, "evening");
  EXPECT_EQ(d.schedules[1].external_id, "team-a");
  EXPECT_EQ(d.schedules[1].timezone, "UTC");
  EXPECT_EQ(d.schedules[2].task, "cleanup");
  EXPECT_TRUE(load_string(minimal + "schedules:\n", "/x/d.yaml").schedules.empty());
}

TEST(DeploymentConfigTest, BadSchedulesAreErrorsWithPosition) {
  auto starts = [](const std::string& msg, const std::string& prefix) { return msg.rfind(prefix, 0) == 0; };
  auto e = error_of(minimal + "schedules:\n  - task: a\n    cron: '* * * * *'\n  - task: a\n    cron: '0 * * * *'\n");
  EXPECT_TRUE(starts(e, "/srv/app/deploy.yaml:6:5: schedules[1]: task 'a' already has a schedule (schedules[0] at line 4)")) << e;
  e = error_of(minimal + "schedules:\n  - {task: a, key: k, cron: '* * * * *'}\n  - {task: b, key: k, cron: '* * * * *'}\n");
  EXPECT_TRUE(starts(e, "/srv/app/deploy.yaml:5:20: schedules[1].key 'k' is used twice")) << e;
  e = error_of(minimal + "schedules:\n  - {cron: '* * * * *'}\n");
  EXPECT_TRUE(starts(e, "/srv/app/deploy.yaml:4:5: schedules[0] is missing required key 'task'")) << e;
  e = error_of(minimal + "schedules:\n  - {task: a}\n");
  EXPECT_NE(e.find("schedules[0] is missing required key 'cron'"), std::string::npos) << e;
  e = error_of(minimal + "schedules:\n  - {task: a, cron: '* * * * *', every: 5}\n");
  EXPECT_NE(e.find("every"), std::string::npos) << e;
  e = error_of(minimal + "schedules:\n  task: a\n");
  EXPECT_TRUE(starts(e, "/srv/app/deploy.yaml:4:3: schedules must be a list")) << e;
  e = error_of(minimal + "schedules:\n  - {task: a, cron: '* * * * *', timezone: ''}\n");
  EXPECT_NE(e.find("timezone must not be empty"), std::string::npos) << e;
}

TEST(DeploymentConfigTest, AuthNamesAKeysFileAndVariablesNeverKeys) {
  auto d = load_string(minimal + "auth:\n  keys_file: secrets/keys\n  keys_from_env: [TASKHOST_API_KEY, CI_KEY_2]\n", "/srv/app/deploy.yaml");
  EXPECT_EQ(d.auth.keys_file, fs::path("/srv/app/secrets/keys"));
  EXPECT_EQ(d.auth.keys_file_position.str(), "/srv/app/deploy.yaml:4:14");
  ASSERT_EQ(d.auth.keys_from_env.size(), 2u);
  EXPECT_EQ(d.auth.keys_from_env[0].name, "TASKHOST_API_KEY");
  EXPECT_EQ(d.auth.keys_from_env[1].name, "CI_KEY_2");
  EXPECT_EQ(d.auth.keys_from_env[1].position.str(), "/srv/app/deploy.yaml:5:37");
  auto none = load_string(minimal, "/srv/app/deploy.yaml");
  EXPECT_TRUE(none.auth.keys_file.empty());
  EXPECT_TRUE(none.auth.keys_from_env.empty());
}

TEST(DeploymentConfigTest, AKeyWrittenIntoTheYamlIsRefusedWherever) {
  const std::string key = "tr_dev_" + std::string(32, 'x');
  const std::string never = "keys never go in the YAML; use auth.keys_file or auth.keys_from_env";
  for (const auto& [yaml, place] : std::vector<std::pair<std::string, std::string>>{
           {"auth:\n  keys: [" + key + "]\n", "4:10"},
           {"auth:\n  key: " + key + "\n", "4:8"},
           {"auth: " + key + "\n", "3:7"},
           {"auth:\n  keys_file: " + key + "\n", "4:14"},
           {"auth:\n  keys_from_env: [" + key + "]\n", "4:19"},
           {"auth:\n  keys_from_env: [OK]\n  extra: {prod: tr_prod_abc}\n", "5:17"}}) {
    auto msg = error_of(minimal + yaml);
    EXPECT_EQ(msg, "/srv/app/deploy.yaml:" + place + ": " + never) << yaml;
    EXPECT_EQ(msg.find(key), std::string::npos) << "the error does not repeat the key";
  }
}

TEST(DeploymentConfigTest, BadAuthValuesAreErrorsWithPosition) {
  EXPECT_EQ(error_of(minimal + "auth: {keys_from_env: TASKHOST_API_KEY}"),
            "/srv/app/deploy.yaml:3:23: auth.keys_from_env must be a list of environment variable names, like [TASKHOST_API_KEY]");
  EXPECT_NE(error_of(minimal + "auth: {keys_from_env: [1ABC]}").find("3:24: auth.keys_from_env entries must be environment variable names"),
            std::string::npos);
  EXPECT_NE(error_of(minimal + "auth: {keys_from_env: [A-B]}").find("must be environment variable names"), std::string::npos);
  EXPECT_NE(error_of(minimal + "auth: {keys_from_env: [A, A]}").find("3:27: environment variable 'A' is listed twice"), std::string::npos);
  EXPECT_NE(error_of(minimal + "auth: {keys_file: \"\"}").find("auth.keys_file must not be empty"), std::string::npos);
  EXPECT_NE(error_of(minimal + "auth: {keys: x}").find("unknown key 'keys' in auth (known keys: keys_file, keys_from_env)"),
            std::string::npos);
}

TEST(DeploymentConfigTest, PacketLimitsHaveDefaultsAndAreChecked) {
  auto d = load_string(minimal, "/x/d.yaml");
  EXPECT_EQ(d.max_packet_bytes, 64u << 20);
  EXPECT_EQ(d.packet_ttl_ms, 24LL * 3600 * 1000);
  EXPECT_EQ(d.packet_upload_url_ttl_ms, 3600 * 1000);
  d = load_string(minimal + "limits: {max_packet_bytes: 2048, packet_ttl_ms: 60000, packet_upload_url_ttl_ms: 1000}\n", "/x/d.yaml");
  EXPECT_EQ(d.max_packet_bytes, 2048u);
  EXPECT_EQ(d.packet_ttl_ms, 60000);
  EXPECT_EQ(d.packet_upload_url_ttl_ms, 1000);
  EXPECT_NE(error_of(minimal + "limits: {max_packet_bytes: 1000000000}\n").find("limits.max_packet_bytes must be between 1024 and 536870912"),
            std::string::npos);
  EXPECT_NE(error_of(minimal + "limits: {packet_ttl_ms: 10}\n").find("limits.packet_ttl_ms"), std::string::npos);
  EXPECT_NE(error_of(minimal + "limits: {packet_upload_url_ttl_ms: 0}\n").find("limits.packet_upload_url_ttl_ms"), std::string::npos);
}

TEST(DeploymentConfigTest, PublicUrlIsAnHttpUrlKeptWithoutItsTrailingSlash) {
  EXPECT_EQ(load_string(minimal, "/x/d.yaml").http.public_url, "");
  EXPECT_EQ(load_string(minimal + "http: {public_url: 'https://tasks.example.com/th/'}\n", "/x/d.yaml").http.public_url,
            "https://tasks.example.com/th");
  EXPECT_EQ(load_string(minimal + "http: {public_url: 'http://10.0.0.5:8080'}\n", "/x/d.yaml").http.public_url, "http://10.0.0.5:8080");
  EXPECT_NE(error_of(minimal + "http: {public_url: 'ftp://h'}\n").find("deploy.yaml:3:"), std::string::npos);
  EXPECT_NE(error_of(minimal + "http: {public_url: 'ftp://h'}\n").find("http.public_url must start with http:// or https://"), std::string::npos);
  EXPECT_NE(error_of(minimal + "http: {public_url: 'https://'}\n").find("needs a host"), std::string::npos);
  EXPECT_NE(error_of(minimal + "http: {public_url: 'https://u:p@h'}\n").find("needs a host"), std::string::npos);
  EXPECT_NE(error_of(minimal + "http: {public_url: 'https://h/x?y=1'}\n").find("without a query"), std::string::npos);
}
