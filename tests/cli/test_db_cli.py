def test_db_upgrade_and_downgrade_from_the_cli(new_database, make_app):
    app = make_app(new_database())
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    assert app.test_client().get("/readyz").status_code == 200
    assert runner.invoke(args=["db", "downgrade", "base"]).exit_code == 0
    assert app.test_client().get("/readyz").status_code == 503
