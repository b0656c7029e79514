"""Test double of comfy.utils.ProgressBar that records what the pack reports."""
reported = []


class ProgressBar:
    def __init__(self, total, node_id=None):
        self.total = total
        self.current = 0

    def update_absolute(self, value, total=None, preview=None):
        if total is not None:
            self.total = total
        self.current = min(value, self.total)
        reported.append((self.current, self.total))

    def update(self, value):
        self.update_absolute(self.current + value)
