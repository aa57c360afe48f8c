"""A module's options as its own parser reads them, and a stand-in for AnsibleAWSModule, for unit tests."""

from ansible_collections.opsvault.aws_backup.plugins.module_utils import options as shared_options


class ModuleExit(Exception):
    """What a stand-in module's exit_json/fail_json were called with."""

    def __init__(self, failed, result):
        super().__init__(result.get("msg"))
        self.failed = failed
        self.result = result


class StandInModule:
    """The part of AnsibleAWSModule a RegionalJob uses: params, check_mode, warn, exit and fail."""

    def __init__(self, params=None, check_mode=False):
        self.params = dict({"max_concurrency": 4}, **(params or {}))
        self.check_mode = check_mode
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)

    def exit_json(self, **result):
        raise ModuleExit(False, result)

    def fail_json(self, **result):
        raise ModuleExit(True, result)


def params_of(module, **overrides):
    """The params Ansible would pass: every option of the module's spec at its default, then ``overrides``."""
    spec = shared_options.argument_spec(shared_options.REGIONAL, shared_options.ASSUME_ROLE, **module.ARGUMENT_SPEC)
    params = {name: option.get("default") for name, option in spec.items()}
    unknown = sorted(set(overrides) - set(params))
    if unknown:
        raise AssertionError("{0} has no option {1}".format(module.__name__, unknown))
    for name, value in overrides.items():
        suboptions = spec[name].get("options")
        if suboptions and isinstance(value, dict):
            # Ansible fills a dict option's suboptions with their defaults too.
            value = dict({key: option.get("default") for key, option in suboptions.items()}, **value)
        params[name] = value
    return params


def options_of(module, check_mode=False, **overrides):
    """``module.parse_options`` of the params Ansible would pass with these ``overrides``."""
    return module.parse_options(params_of(module, **overrides), check_mode)
