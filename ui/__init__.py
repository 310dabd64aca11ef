"""Streamlit glue shared by the pages: the cached store handle, the login gate and the widget
helpers (`*_ui()` functions that draw widgets and return what was chosen). Pages live in
`pages/`; nothing here is a page, so nothing here may sit under `pages/`."""
