from madoguchi.cli import run

# Guarded: worker processes (forkserver) import the main module again.
if __name__ == "__main__":
    run()
