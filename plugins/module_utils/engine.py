# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The regional engine every EC2 module plugs into.

A module subclasses ``RegionalJob`` with its describe, its planner call and its apply step;
``run()`` does the rest, the same way for all of them:

1. resolve ``regions`` (a bad name fails the task before any change) and make one client per
   region from one shared boto3 session;
2. describe every region concurrently; a region that fails is an error, the others go on;
3. plan each region with the module's pure planner (``todo``, ``skipped``, ``warnings``, ``notes``);
4. check each region before its first change (``check_region``), then apply the items
   round-robin over the regions, so every region's rate limits drain at once, or in check mode
   preview them (``state: planned``), with zero mutating calls;
   A job whose items are independent of each other (``streamed = True``, e.g. a backup, never a
   purge) pipelines steps 2 to 4: its ``describe`` yields the region's data in parts as the pages
   arrive, each part is planned at once and its items applied while the regions are still being
   described, so the first change goes out before the last describe page (``check_region`` and
   ``after_plan`` are not called for it);
5. exit with one result vocabulary: the done items under the module's plural key,
   ``skipped_resources``, ``errors``, ``regions``, a readable ``msg``; fail after everything
   else was done when any item failed.
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.opsvault.aws_backup.plugins.module_utils import options as shared_options
from ansible_collections.opsvault.aws_backup.plugins.module_utils import values
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import account_id_of
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import regional_clients
from ansible_collections.opsvault.aws_backup.plugins.module_utils.fanout import by_region
from ansible_collections.opsvault.aws_backup.plugins.module_utils.fanout import run_as_produced
from ansible_collections.opsvault.aws_backup.plugins.module_utils.fanout import run_concurrently
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import target_regions
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import PLANNED
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import Summary
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import finish


def aws_module(argument_spec, parse_options):
    """``(module, options)``: the AnsibleAWSModule with the role options (assume_role_arn, external_id,
    role_session_name), and its options as ``parse_options(params, check_mode)`` reads them; a
    ValueError (naming the option and the value) fails the task before any call."""
    module = AnsibleAWSModule(
        argument_spec=shared_options.argument_spec(shared_options.ASSUME_ROLE, **argument_spec),
        supports_check_mode=True,
    )
    try:
        shared_options.assume_role(module.params)
        parsed = parse_options(module.params, module.check_mode)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    return module, parsed


def regional_module(argument_spec, parse_options):
    """``aws_module`` with the shared regional options (regions, max_concurrency) added."""

    def parse(params, check_mode):
        shared_options.at_least("max_concurrency", params["max_concurrency"], 1)
        return parse_options(params, check_mode)

    return aws_module(shared_options.argument_spec(shared_options.REGIONAL, **argument_spec), parse)


def plan(todo=None, skipped=None, warnings=None, notes=None, **extra):
    """A region's plan as the engine reads it (missing parts empty); ``extra`` keys are the module's own."""
    return dict(extra, todo=todo or [], skipped=skipped or [], warnings=warnings or [], notes=notes or [])


class RegionalJob:
    """One run of a regional module.  Subclasses set ``action`` (the name of the apply step in
    ``errors``) and implement ``describe``, ``plan_region``, ``apply`` and ``result_keys``."""

    service = "ec2"
    action = "apply"
    needs_account_id = False
    streamed = False

    def __init__(self, module, options, regions, clients, account_id=None):
        self.module = module
        self.options = options
        self.regions = regions
        self.clients = clients
        self.account_id = account_id
        self.check_mode = module.check_mode
        self.max_concurrency = module.params["max_concurrency"]
        self.now = values.utc_now()
        self.errors, self.warnings, self.skipped, self.notes = [], [], [], []

    @classmethod
    def for_module(cls, module, options):
        """The job of a module run: its regions resolved (a bad name fails the task before any
        change), the account id when the job needs it, and one client per region."""
        regions = target_regions(module)
        account_id = account_id_of(module, regions[0]) if cls.needs_account_id else None
        clients = regional_clients(module, cls.service, regions, module.params["max_concurrency"])
        return cls(module, options, regions, clients, account_id)

    # ------------------------------------------------------------ the module's part

    def describe(self, region):
        """What the planner needs of one region: paginated, filtered Describe calls.  A streamed job's
        describe is a generator of parts, each of which ``plan_region`` plans on its own."""
        raise NotImplementedError

    def plan_region(self, region, described):
        """The planner's call for one region (or one part of it, for a streamed job); returns ``plan(...)``."""
        raise NotImplementedError

    def apply(self, item):
        """Carry out one planned item; returns its result item (or a list of them)."""
        raise NotImplementedError

    def preview(self, item):
        """An item's result in check mode."""
        return dict(item, state=PLANNED)

    def resource_of(self, item):
        return item["resource"]

    def check_region(self, region_plan):
        """Called once per region with todo items before its first change (and in check mode);
        raising leaves that region unchanged and reports it in ``errors``."""

    def result_keys(self, done):
        """The module's own result keys, from the done (or previewed) items."""
        raise NotImplementedError

    def summarise(self, summary, result):
        """Add the module's lines (``summary.done(...)``) to ``msg``."""

    def make_clients(self, regions, **retries):
        return regional_clients(self.module, self.service, regions, self.max_concurrency, **retries)

    # ------------------------------------------------------------ the pipeline

    def run(self):
        if self.streamed:
            self.exit(self.result_keys(self.described_planned_and_applied()))
            return
        plans = self.describe_and_plan()
        plans = self.checked(plans)
        todo = [item for region_plan in plans for item in region_plan["todo"]]
        for region_plan in plans:
            self.keep_remarks(region_plan)
        self.after_plan(plans)
        done = self.preview_all(todo) if self.check_mode else self.apply_all(todo)
        self.exit(self.result_keys(done))

    def keep_remarks(self, region_plan):
        self.skipped.extend(region_plan["skipped"])
        self.warnings.extend(region_plan["warnings"])
        self.notes.extend(region_plan["notes"])

    def describe_and_plan(self):
        plans = []
        described = run_concurrently(self.describe, self.regions, self.max_concurrency)
        for region, data, exc in described:
            if exc:
                self.errors.append(error_entry(region, region, "describe", exc))
            else:
                plans.append(plan(region=region, **self.plan_region(region, data)))
        return plans

    def checked(self, plans):
        """The plans of the regions that passed ``check_region``."""
        with_work = [region_plan for region_plan in plans if region_plan["todo"]]
        failed = set()
        for region_plan, _value, exc in run_concurrently(self.check_region, with_work, self.max_concurrency):
            if exc:
                failed.add(region_plan["region"])
                self.errors.append(error_entry(region_plan["region"], region_plan["region"], "describe", exc))
        return [region_plan for region_plan in plans if region_plan["region"] not in failed]

    def described_planned_and_applied(self):
        """The streamed pipeline: each region's parts planned as they are described, their items
        applied (or previewed) as they are planned; the remarks kept in the order of the regions."""
        remarks = {region: [] for region in self.regions}

        def planned_parts(region):
            for part in self.describe(region):
                region_plan = plan(region=region, **self.plan_region(region, part))
                remarks[region].append(region_plan)
                yield region_plan["todo"]

        carry_out = self.preview if self.check_mode else self.apply
        outcomes, failed = run_as_produced(planned_parts, self.regions, carry_out, self.max_concurrency)
        for region in self.regions:
            for region_plan in remarks[region]:
                self.keep_remarks(region_plan)
        for region, exc in failed:
            self.errors.append(error_entry(region, region, "describe", exc))
        return self.collected(outcomes)

    def after_plan(self, plans):
        """Hook for what needs every region's plan (e.g. ids asked for that no region has)."""

    def preview_all(self, todo):
        return [self.preview(item) for item in todo]

    def apply_all(self, todo):
        """Every item applied, round-robin over the regions; a failed item is an error, the rest go on."""
        return self.collected(run_concurrently(self.apply, todo, self.max_concurrency, spread_by=by_region))

    def collected(self, outcomes):
        """The done items of ``[(item, value, error)]``; a failed item is an error."""
        done = []
        for item, value, exc in outcomes:
            if exc:
                self.errors.append(error_entry(self.resource_of(item), item["region"], self.action, exc))
            elif isinstance(value, list):
                done.extend(value)
            else:
                done.append(value)
        return done

    def exit(self, own_keys):
        for warning in self.warnings:
            self.module.warn(warning)
        result = dict(own_keys, skipped_resources=self.skipped, errors=self.errors, regions=self.regions)
        result.setdefault("changed", False)
        summary = Summary(self.check_mode)
        self.summarise(summary, result)
        summary.skipped(self.skipped)
        for note in dict.fromkeys(self.notes):
            summary.note(note)
        if "as_of" in result:
            summary.note("as of {0}".format(result["as_of"]))
        summary.errors(self.errors)
        result["msg"] = "{0}: {1}".format(", ".join(self.regions), summary.text())
        finish(self.module, result)
