#include "migrate/job_env.h"

#include <fmt/format.h>

namespace vmshift::migrate {

std::optional<Result> check_again(JobEnv& env, const JobRecord& job, JobContext& ctx,
                                  const LiveMigrationOptions& options, LiveMigrationPlan& plan) {
  Recheck again = env.check_migration(job.vm, job.source_host, options);
  if (!again.plan) {
    ctx.step(0, StepState::kFailed, again.refused);
    return Result{Outcome::kFailed,
                  fmt::format("Refused: {}. Nothing was changed; the VM stays on host '{}'.",
                              again.refused, job.source_host)};
  }
  Prediction first = plan.prediction;
  plan = *again.plan;
  plan.prediction = first;
  return std::nullopt;
}

}  // namespace vmshift::migrate
