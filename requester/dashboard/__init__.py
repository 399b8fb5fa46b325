"""The web dashboard's files (``index.html``, ``app.js``, ``style.css``): package data that
:mod:`requester.api_dashboard` serves at ``/dashboard/``."""
