-- 1722 (issue 16): support_kept_tenants.checked, the judging instant (``now``) of the report that last tried to
-- move the tenant's cut on. A tenant whose cut is the opening of a request still open cannot move on until that
-- request is reacted: it is tried again once a day (reports/requests.py:REFRESH_AFTER), not on every report.
ALTER TABLE support_kept_tenants ADD COLUMN checked timestamptz;
