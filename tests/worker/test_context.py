from sqlalchemy import text

from worker.context import WorkerContext, database_url_with_timeouts


def test_postgres_urls_get_timeouts_and_keep_their_own() -> None:
    url = database_url_with_timeouts("postgresql+psycopg://u:p%40ss@db:5432/vr")
    assert "connect_timeout=10" in url and "statement_timeout" in url and "p%40ss" in url
    own = database_url_with_timeouts("postgresql+psycopg://u@db/vr?connect_timeout=3")
    assert "connect_timeout=3" in own and "connect_timeout=10" not in own
    assert database_url_with_timeouts("sqlite:///x.db") == "sqlite:///x.db"


def test_context_sessions_run_with_the_timeouts(wsettings, engine) -> None:
    with WorkerContext.create(wsettings()) as ctx, ctx.engine.connect() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar() == "1min"
        assert conn.execute(text("SHOW lock_timeout")).scalar() == "30s"
        assert ctx.redis.ping()
