"""Smoke test of the harness and the identity service with the real openstack CLI."""


def test_token_issue_and_catalog(cloud):
    tok = cloud.openstack("token", "issue")
    assert tok["id"].startswith("gAAAAA")
    cat = cloud.openstack("catalog", "list")
    types = {c["Type"] for c in cat}
    assert "identity" in types


def test_wrong_password_is_401(cloud):
    env = cloud.creds_env("admin", "wrong", "admin")
    p = cloud.openstack("token", "issue", env=env, check=False)
    assert p.returncode != 0
    assert "401" in p.stderr
