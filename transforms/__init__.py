"""mediamon stages: pure logic modules and one composite PTransform per stage."""
