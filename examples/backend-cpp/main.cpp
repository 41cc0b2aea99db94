// examples/backend-cpp/main.cpp — triggers hello-world, waits for its run, prints the output.
#include <taskhost/client.hpp>

#include <iostream>

namespace api = taskhost::api;

int main(int argc, char** argv) {
  try {
    auto tc = taskhost::client::from_env();  // $TASKHOST_API_URL and $TASKHOST_API_KEY
    api::run_handle handle = tc.trigger("hello-world", {{"message", argc > 1 ? argv[1] : "Hello world!"}});
    std::cout << "triggered " << handle.id << std::endl;
    api::run run = tc.wait_for_completion(handle.id, std::chrono::minutes(1));
    std::cout << api::to_string(run.status) << " " << run.output.dump() << std::endl;
    return run.is_success() ? 0 : 1;
  } catch (const api::client_error& e) {  // api_error (status, message), connection_error, ...
    std::cerr << "backend: " << e.what() << std::endl;
    return 2;
  }
}
