from got_data.cli import app

app()
