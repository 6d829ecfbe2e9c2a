mod lab;
mod support_lab;
