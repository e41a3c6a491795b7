from madoguchi.cli import app

# Guarded: worker processes (forkserver) import the main module again.
if __name__ == "__main__":
    app(prog_name="madoguchi")
