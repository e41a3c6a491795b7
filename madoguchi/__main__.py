from madoguchi.cli import app

app(prog_name="madoguchi")
