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

Result run_on_sites(const JobRecord& job, JobEnv& env, JobContext& ctx, const RunOnSites& run) {
  MigrationParams p = migration_params_from(job.params);
  if (!job.has_state())
    if (auto refused = check_again(env, job, ctx, p.options, p.plan)) return *refused;
  std::unique_ptr<OpenSite> src = env.open_site(job.source_host);
  std::unique_ptr<OpenSite> dst = env.open_site(job.dest_host);
  return run(src->site(), dst->site(), p, ctx);
}

Result recover_on_sites(const JobRecord& job, JobEnv& env, JobContext& ctx,
                        RecoverOnSites recover) {
  std::unique_ptr<OpenSite> src = env.open_site(job.source_host);
  std::unique_ptr<OpenSite> dst = env.open_site(job.dest_host);
  return recover(src->site(), dst->site(), job.state, ctx);
}

}  // namespace vmshift::migrate
